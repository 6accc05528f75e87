"""Request and response models: `…In` is what a client sends, `…Out` what it gets back. Field
descriptions and examples feed the OpenAPI page (/docs)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import PROGRAMS

__all__ = [
    "MemberIn", "CheckIn", "FlagOut", "CheckOut", "SkippedOut", "StoredFlagOut", "FlagPage", "EventOut",
    "FlagDetailOut", "EventIn", "BatchOut", "ProblemOut", "RunIn", "RunOut", "RunDetailOut", "RunRuleOut",
    "SourceOut", "SnapshotOut", "RuleOut", "HealthOut", "AuditOut", "AuditPage", "ErrorOut",
]

ID_EXAMPLE = "320303198001011234"
Program = Literal[tuple(PROGRAMS)]  # type: ignore[valid-type]
Severity = Literal["high", "medium", "low"]
Cadence = Literal["monthly", "quarterly", "semiannual", "annual"]


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable kind, e.g. not_found, invalid_input")
    detail: Any = Field(description="what went wrong, for a person; field or row problems listed")


class MemberIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "id_number": ID_EXAMPLE, "name": "张三", "program": "dibao", "region_code": "320303001",
        "benefit_monthly": 880, "declared_income_monthly": 0, "relation": "户主"}})

    id_number: str = Field(min_length=1, max_length=64, description="身份证号, as written (it is normalized)")
    name: str = Field(min_length=1, max_length=100, description="姓名")
    program: Program = Field(description="救助类别")  # type: ignore[valid-type]
    region_code: str = Field(pattern=r"^\d{6,12}$", description="行政区划代码, 6–12 digits")
    benefit_monthly: float = Field(ge=0, le=1e7, description="月保障金额 (yuan)")
    declared_income_monthly: float = Field(0, ge=0, le=1e8, description="申报月收入 (yuan)")
    relation: str | None = Field(None, max_length=32, description="与户主关系, e.g. 户主, 配偶, 子女")
    enrolled_on: date | None = Field(None, description="纳入日期")


class CheckIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "household_id": "APP-2026-000123", "as_of": "2026-06-30", "record": False,
        "members": [MemberIn.model_config["json_schema_extra"]["example"]]}})  # type: ignore[index]

    household_id: str = Field("APPLICATION", min_length=1, max_length=255, pattern=r"\S",
                              description="家庭编号 (an application number is fine)")
    as_of: date | None = Field(None, description="核对基准日; default today")
    members: list[MemberIn] = Field(min_length=1, max_length=100, description="one entry per person per program")
    rules: list[str] | None = Field(None, max_length=50, description="rule ids to apply; default every rule")
    cadences: list[Cadence] | None = Field(None, max_length=4, description="only rules of these cadences")  # type: ignore[valid-type]
    record: bool = Field(False, description="also record the findings as flags (a run of trigger `api`); "
                                            "by default nothing is stored")


class FlagOut(BaseModel):
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
    rule_id: str
    reason: str


class CheckOut(BaseModel):
    household_id: str
    as_of: date
    flags: list[FlagOut]
    ran: list[str]
    skipped: list[SkippedOut]
    warnings: list[str] = Field(description="rows kept with a warning, e.g. an invalid ID (id_invalid reports it)")
    snapshots: dict[str, date] = Field(description="the snapshot date of each source the check read")
    run_id: int | None = Field(None, description="the recorded run, when `record` was asked for")


class StoredFlagOut(FlagOut):
    id: int
    status: str
    status_zh: str
    status_at: datetime
    opened_at: datetime
    days_open: int
    overdue: bool
    assignee: str | None
    first_run_id: int
    last_run_id: int


class FlagPage(BaseModel):
    total: int = Field(description="matching flags within your region")
    limit: int
    offset: int
    items: list[StoredFlagOut]


class EventOut(BaseModel):
    id: int
    kind: str
    kind_zh: str
    at: datetime
    by: str
    run_id: int | None
    detail: Any


class FlagDetailOut(StoredFlagOut):
    events: list[EventOut]


class EventIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"action": "visit", "income": 650, "expenditure": 900, "living": "两间平房，无车辆", "note": "入户核查"},
        {"action": "dismiss", "reason": "车辆已于2025年转让，提供过户证明"},
        {"action": "confirm", "confirm_action": "stop", "note": "本人已死亡，停发"},
    ]})

    action: Literal["assign", "visit", "confirm", "dismiss", "appeal", "resolve", "reopen"]
    to: str | None = Field(None, max_length=255, description="assign: the caseworker")
    income: float | None = Field(None, ge=0, le=1e8, description="visit: 核实月收入 (yuan)")
    expenditure: float | None = Field(None, ge=0, le=1e8, description="visit: 核实月支出 (yuan)")
    living: str | None = Field(None, max_length=2000, description="visit: 生活状况")
    confirm_action: Literal["stop", "reduce", "recover"] | None = Field(None, description="confirm: 停发/减发/追缴")
    amount: float | None = Field(None, ge=0, le=1e9, description="confirm/resolve: yuan")
    reason: str | None = Field(None, max_length=2000, description="dismiss/reopen: the reason")
    note: str | None = Field(None, max_length=4000)


class ProblemOut(BaseModel):
    file: str
    row: int | None
    column: str | None
    column_zh: str | None = None
    value: str | None
    message: str


class BatchOut(BaseModel):
    id: int
    status: Literal["queued", "validating", "checking", "recording", "completed", "failed"]
    status_zh: str
    step: str | None
    progress: float = Field(ge=0, le=1)
    file_name: str
    as_of: date
    by: str
    created_at: datetime
    finished_at: datetime | None
    rows: int | None
    households: int | None
    rejects: int | None
    flags: int | None
    problems: list[ProblemOut]
    run_id: int | None
    error: str | None


class RunIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"as_of": "2026-06-30", "cadences": ["monthly"]}})

    as_of: date | None = Field(None, description="default today")
    rules: list[str] | None = Field(None, max_length=50)
    cadences: list[Cadence] | None = Field(None, max_length=4)  # type: ignore[valid-type]


class RunOut(BaseModel):
    id: int
    trigger: str
    status: str
    as_of: date
    started_at: datetime
    finished_at: datetime | None
    found: int | None
    raised: int | None
    reopened: int | None
    seen: int | None
    cleared: int | None
    error: str | None


class RunRuleOut(BaseModel):
    rule_id: str
    outcome: str
    reason: str | None
    flags: int | None
    same_as_run_id: int | None


class RunDetailOut(RunOut):
    timings: dict[str, float] | None
    inputs: dict[str, int] = Field(description="the snapshot id of each input")
    rules: list[RunRuleOut]


class SourceOut(BaseModel):
    key: str
    zh: str
    cadence: str
    snapshot_id: int | None
    snapshot_date: date | None
    received_at: datetime | None
    rows: int | None
    rejects: int | None
    age_days: int | None
    state: Literal["current", "stale", "missing"]
    snapshots: int


class SnapshotOut(BaseModel):
    id: int
    key: str
    snapshot_date: date
    file_name: str
    rows: int
    rejects: int
    warnings: int
    new: bool = Field(description="false: this very file was already held; nothing was done")
    problems: list[ProblemOut]


class RuleOut(BaseModel):
    id: str
    label_zh: str
    label_en: str
    cadence: str
    programs: list[str] | None
    level: str
    severity: str
    sources: list[str]
    condition: str


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    version: str
    snapshots: dict[str, date]
    uptime_seconds: float


class AuditOut(BaseModel):
    id: int
    at: datetime
    user_name: str | None
    role: str | None
    address: str | None
    method: str
    path: str
    action: str
    status_code: int
    detail: Any


class AuditPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[AuditOut]
