"""Request and response models: `…In` is what a client sends, `…Out` what it gets back. Field
descriptions and examples feed the OpenAPI page (/docs)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.rules import RULES
from schemas import PROGRAMS
from store.lifecycle import STATUS_ZH

__all__ = [
    "MemberIn", "CheckIn", "FlagOut", "CheckOut", "SkippedOut", "StoredFlagOut", "FlagPage", "EventOut",
    "FlagDetailOut", "EventIn", "BatchOut", "ProblemOut", "RunIn", "RunOut", "RunDetailOut", "RunRuleOut",
    "SourceOut", "SnapshotOut", "RuleOut", "HealthOut", "AuditOut", "AuditPage", "ErrorOut", "AUTH_ERRORS",
    "error_responses", "RowId", "IsoDate", "FormDate", "IsoDateTime", "Program", "Severity", "Cadence", "RuleId",
    "Status", "EVENT_NEEDS", "BINARY",
]

ID_EXAMPLE = "320303198001011234"
Program = Literal[tuple(PROGRAMS)]  # type: ignore[valid-type]
Severity = Literal["high", "medium", "low"]
Cadence = Literal["monthly", "quarterly", "semiannual", "annual"]
RuleId = Literal[tuple(RULES)]  # type: ignore[valid-type]
Status = Literal[tuple(STATUS_ZH)]  # type: ignore[valid-type]


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable kind, e.g. not_found, invalid_input")
    detail: Any = Field(description="what went wrong, for a person; field or row problems listed")


_ERRORS = {
    400: "the body cannot be parsed (not UTF-8 JSON, a broken multipart form)",
    401: "no token, an unknown one, or a disabled user's",
    403: "your role may not do this, or not in this region",
    404: "nothing with this id within your region",
    409: "the flag's status does not allow this action",
    413: "the upload is larger than the limit, or an XLSX expands too far",
    422: "the request is invalid: each field, or each row of the file, is named",
    503: "the store is busy (another run holds it): try again after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all of the one shape ErrorOut."""
    return {status: {"model": ErrorOut, "description": _ERRORS[status]} for status in statuses}


AUTH_ERRORS = error_responses(401, 403)  # every route that takes a token


def _iso(value: Any) -> Any:
    """Dates and times as ISO 8601 text only: pydantic would also take a number as a Unix time
    (`since=0.5` is 1970-01-01T00:00:00.5), which no client means."""
    if isinstance(value, (int, float)) or isinstance(value, str) and not re.match(r"\s*\d{4}-\d{2}-\d{2}", value):
        raise ValueError("use an ISO 8601 date, e.g. 2026-06-30 (or a time: 2026-06-30T08:00:00+08:00)")
    return value


# A stored row's id, as a path parameter: beyond this no database holds it (and SQLite would
# refuse to compare it at all).
RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]
IsoDate = Annotated[date, BeforeValidator(_iso)]
IsoDateTime = Annotated[datetime, BeforeValidator(_iso)]


def _form_date(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else _iso(value)


# An uploaded file in a multipart form: bytes (OpenAPI's `format: binary`, which tools read as
# "any content", beside JSON Schema's contentMediaType).
BINARY = {"format": "binary"}
# A date in a multipart form, where a field left empty means "not given" (a form has no null).
FormDate = Annotated[date | None, BeforeValidator(_form_date), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}]})]
# What a client sends is taken as typed (no "880" for 880, no 0 for false: `strict` on numbers
# and flags) and unknown fields are refused: a misspelt field (`declared_income`, `recrod`) must
# not pass silently as its default.
_STRICT = {"extra": "forbid"}


class MemberIn(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra={"example": {
        "id_number": ID_EXAMPLE, "name": "张三", "program": "dibao", "region_code": "320303001",
        "benefit_monthly": 880, "declared_income_monthly": 0, "relation": "户主"}})

    id_number: str = Field(min_length=1, max_length=64, pattern=r"\S",
                           description="身份证号, as written (it is normalized)")
    name: str = Field(min_length=1, max_length=100, pattern=r"\S", description="姓名")
    program: Program = Field(description="救助类别")  # type: ignore[valid-type]
    region_code: str = Field(pattern=r"^\d{6,12}$", description="行政区划代码, 6–12 digits")
    benefit_monthly: float = Field(ge=0, le=1e7, strict=True, description="月保障金额 (yuan)")
    declared_income_monthly: float = Field(0, ge=0, le=1e8, strict=True, description="申报月收入 (yuan)")
    relation: str | None = Field(None, max_length=32, description="与户主关系, e.g. 户主, 配偶, 子女")
    enrolled_on: IsoDate | None = Field(None, description="纳入日期")


class CheckIn(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra={
        "example": {"household_id": "APP-2026-000123", "as_of": "2026-06-30", "record": False,
                    "members": [MemberIn.model_config["json_schema_extra"]["example"]]},  # type: ignore[index]
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


# What each review action needs (store.lifecycle refuses it without): {action: (fields, of
# which at least one is given)}; checked here so that a missing reason is a 422 naming the
# field, not a 409 as if the flag's status were in the way, and stated in the schema (if/then).
EVENT_NEEDS: dict[str, tuple[str, ...]] = {
    "assign": ("to",), "visit": ("income", "expenditure", "living", "note"), "confirm": ("confirm_action",),
    "dismiss": ("reason",), "reopen": ("reason",),
}
_TYPES = {"to": "string", "income": "number", "expenditure": "number", "living": "string",
          "confirm_action": "string", "reason": "string", "note": "string"}


def _needs_schema() -> list[dict[str, Any]]:
    def given(name: str) -> dict[str, Any]:
        return {"required": [name], "properties": {name: {"type": _TYPES[name]}}}

    return [{"if": {"properties": {"action": {"const": action}}, "required": ["action"]},
             "then": given(names[0]) if len(names) == 1 else {"anyOf": [given(n) for n in names]}}
            for action, names in EVENT_NEEDS.items()]


class EventIn(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra={"allOf": _needs_schema(), "examples": [
        {"action": "visit", "income": 650, "expenditure": 900, "living": "两间平房，无车辆", "note": "入户核查"},
        {"action": "dismiss", "reason": "车辆已于2025年转让，提供过户证明"},
        {"action": "confirm", "confirm_action": "stop", "note": "本人已死亡，停发"},
    ]})

    action: Literal["assign", "visit", "confirm", "dismiss", "appeal", "resolve", "reopen"]
    to: str | None = Field(None, max_length=255, validate_default=True, pattern=r"\S",
                           description="assign: the caseworker")
    income: float | None = Field(None, ge=0, le=1e8, strict=True, description="visit: 核实月收入 (yuan)")
    expenditure: float | None = Field(None, ge=0, le=1e8, strict=True, description="visit: 核实月支出 (yuan)")
    living: str | None = Field(None, max_length=2000, pattern=r"\S", description="visit: 生活状况")
    confirm_action: Literal["stop", "reduce", "recover"] | None = Field(None, validate_default=True,
                                                                        description="confirm: 停发/减发/追缴")
    amount: float | None = Field(None, ge=0, le=1e9, strict=True, description="confirm/resolve: yuan")
    reason: str | None = Field(None, max_length=2000, validate_default=True, pattern=r"\S",
                               description="dismiss/reopen: the reason")
    note: str | None = Field(None, max_length=4000, validate_default=True, pattern=r"\S")

    @field_validator(*{names[-1] for names in EVENT_NEEDS.values()})
    @classmethod
    def _needed(cls, value: Any, info: ValidationInfo) -> Any:
        """The action's required field (the last of its either-or fields) is named when missing."""
        names = EVENT_NEEDS.get(info.data.get("action", ""), ())
        if value is None and names and names[-1] == info.field_name and all(info.data.get(n) is None for n in names):
            raise PydanticCustomError("missing", "{action} needs {names}",
                                      {"action": info.data["action"], "names": " or ".join(names)})
        return value


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
    """The rules to run: chosen by id, or by cadence (not both: together they could select
    nothing); every rule when neither is given."""

    model_config = ConfigDict(**_STRICT, json_schema_extra={
        "example": {"as_of": "2026-06-30", "cadences": ["monthly"]}, "not": {"required": ["rules", "cadences"]}})

    as_of: IsoDate | None = Field(None, description="default today")
    rules: list[RuleId] | None = Field(None, min_length=1, max_length=50,  # type: ignore[valid-type]
                                       description="rule ids to run; default every rule")
    cadences: list[Cadence] | None = Field(None, min_length=1, max_length=4,  # type: ignore[valid-type]
                                           description="the rules of these cadences")

    @model_validator(mode="before")
    @classmethod
    def _rules_or_cadences(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rules" in data and "cadences" in data:
            raise ValueError("give rules or cadences, not both")
        return data


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
