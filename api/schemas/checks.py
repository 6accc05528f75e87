"""POST /checks: the household sent, and what its check found."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.rules import RULES

from .common import STRICT, Cadence, IsoDate, ProgramIn, RuleId
from .examples import DECEASED_FLAG, ID_EXAMPLE, SKIPPED, SNAPSHOT_DATES, VEHICLE_FLAG

__all__ = ["MemberIn", "CheckIn", "FlagOut", "SkippedOut", "CheckOut"]


class MemberIn(BaseModel):
    model_config = ConfigDict(**STRICT, json_schema_extra={"examples": [{
        "id_number": ID_EXAMPLE, "name": "张三", "program": "dibao", "region_code": "320303001",
        "benefit_monthly": 880, "declared_income_monthly": 0, "relation": "户主"}]})

    id_number: str = Field(min_length=1, max_length=64, pattern=r"\S",
                           description="身份证号, as written (it is normalized)")
    name: str = Field(min_length=1, max_length=100, pattern=r"\S", description="姓名")
    program: ProgramIn = Field(description="救助类别: the code, or its Chinese name as rolls write it "  # type: ignore[valid-type]
                                           "(低保, 城市低保, 特困供养人员, 五保…)")
    region_code: str = Field(pattern=r"^[0-9]{6,12}$", description="行政区划代码, 6–12 digits")
    benefit_monthly: float = Field(ge=0, le=1e7, strict=True, description="月保障金额 (yuan)")
    declared_income_monthly: float = Field(0, ge=0, le=1e8, strict=True, description="申报月收入 (yuan)")
    relation: str | None = Field(None, max_length=32, description="与户主关系, e.g. 户主, 配偶, 子女")
    enrolled_on: IsoDate | None = Field(None, description="纳入日期")


class CheckIn(BaseModel):
    model_config = ConfigDict(**STRICT, json_schema_extra={
        "examples": [{"household_id": "APP-2026-000123", "as_of": "2026-06-30", "record": False,
                      "members": MemberIn.model_config["json_schema_extra"]["examples"]}],  # type: ignore[index]
        # Recorded flags are the household's: two applications must not share the default id.
        "if": {"properties": {"record": {"const": True}}, "required": ["record"]},
        "then": {"required": ["household_id"]}})

    household_id: str = Field("APPLICATION", min_length=1, max_length=255, pattern=r"\S",
                              description="家庭编号 (an application number is fine); required with `record`")
    as_of: IsoDate | None = Field(None, description="核对基准日; default today")
    members: list[MemberIn] = Field(min_length=1, max_length=100, description="one entry per person per program")
    rules: list[RuleId] | None = Field(None, min_length=1, max_length=50,  # type: ignore[valid-type]
                                       description="rule ids to apply; default every rule")
    cadences: list[Cadence] | None = Field(None, min_length=1, max_length=4,  # type: ignore[valid-type]
                                           description="only rules of these cadences")
    record: bool = Field(False, strict=True, description="also record the findings as flags (a run of trigger `api`); "
                                            "by default nothing is stored")


class FlagOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DECEASED_FLAG, VEHICLE_FLAG]})

    rule_id: str
    rule_label_zh: str | None = None
    rule_label_en: str | None = None
    severity: str
    cadence: str
    level: str | None = None
    program: str | None
    household_id: str | None
    id_number: str | None = Field(description="normalized or resolved ID (masked for roles that do not need it)")
    roll_id_number: str | None = Field(description="the ID as given")
    name: str | None
    region_code: str | None
    source: str | None
    match_method: str | None = Field(description="exact | legacy15 | repaired | fuzzy")
    match_score: float | None
    evidence: Any = Field(description="the source record(s) behind the finding, as JSON")
    overpayment: float | None
    as_of: date
    flag_id: int | None = Field(None, description="the stored flag, when the finding was recorded")


class SkippedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SKIPPED]})

    rule_id: str
    reason: str


class CheckOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "household_id": "APP-2026-000123", "as_of": "2026-06-30", "flags": [DECEASED_FLAG],
        "ran": [rule_id for rule_id in RULES if rule_id != SKIPPED["rule_id"]], "skipped": [SKIPPED],
        "warnings": [], "snapshots": SNAPSHOT_DATES, "run_id": None}]})

    household_id: str
    as_of: date
    flags: list[FlagOut]
    ran: list[str]
    skipped: list[SkippedOut]
    warnings: list[str] = Field(description="rows kept with a warning, e.g. an invalid ID (id_invalid reports it)")
    snapshots: dict[str, date] = Field(description="the snapshot date of each source the check read")
    run_id: int | None = Field(None, description="the recorded run, when `record` was asked for")
