"""Request and response models: `…In` is what a client sends, `…Out` what it gets back. Field
descriptions and examples feed the OpenAPI page (/docs)."""

from __future__ import annotations

import copy
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
    "Status", "EVENT_NEEDS", "BINARY", "ROLL_CSV_EXAMPLE", "SOURCE_CSV_EXAMPLE", "restore_examples",
]

# Examples (the OpenAPI page, /docs): one township of 徐州市云龙区 (320303001), as of 2026-06-30, as
# the engine and the store emit them. tests/api/test_openapi.py validates each against its model
# and its published schema, so that none of them can drift from what the API answers.
ID_EXAMPLE = "320303198001011235"  # a valid ID (check character included)
ID_EXAMPLE_X = "32030319741011445X"
Program = Literal[tuple(PROGRAMS)]  # type: ignore[valid-type]
Severity = Literal["high", "medium", "low"]
Cadence = Literal["monthly", "quarterly", "semiannual", "annual"]
RuleId = Literal[tuple(RULES)]  # type: ignore[valid-type]
Status = Literal[tuple(STATUS_ZH)]  # type: ignore[valid-type]


_ERROR_EXAMPLES: dict[int, list[dict[str, Any]]] = {
    400: [{"error": "bad_request", "detail": "There was an error parsing the body"}],
    401: [{"error": "not_authenticated", "detail": "令牌无效 the token is unknown or its user is disabled"}],
    403: [{"error": "forbidden", "detail": "角色 caseworker 无权执行此操作 (role 'caseworker' may not runs write)"}],
    404: [{"error": "not_found", "detail": "没有编号为 999 的预警 (no flag 999)"}],
    409: [{"error": "review_not_allowed",
           "detail": "预警 47 当前状态为“已排除”，不能入户核查 (flag 47 is dismissed: visit applies only to flags "
                     "that are open, assigned, visited, appealed)"}],
    413: [{"error": "too_large", "detail": "上传文件过大 the upload is larger than 50 MB (CROSSCHECK_MAX_UPLOAD_MB)"}],
    422: [{"error": "invalid_request", "detail": [
              {"field": "members[0].region_code", "in": "body", "message": "String should match pattern '^\\d{6,12}$'"},
              {"field": "members[1].benefit_monthly", "in": "body", "message": "Input should be a valid number"}]},
          {"error": "invalid_input", "detail": {
              "message": "vehicles.csv: 表头不符合“车辆”的要求 (header does not fit vehicles)",
              "problems": [{"file": "vehicles.csv", "row": None, "column": "plate", "column_zh": "号牌号码", "value": None,
                            "message": "缺少必填列“号牌号码”，可用的表头：plate, 号牌号码, 车牌号 "
                                       "(required column plate is missing; accepted headers: plate, 号牌号码, 车牌号)"}]}}],
    503: [{"error": "busy", "detail": "存储正忙 the store is busy: another run or review holds its lock and did not finish "
                                      "within 30 s. Nothing was written; try again when it has finished "
                                      "(CROSSCHECK_LOCK_TIMEOUT sets how long to wait)."}],
}


class ErrorOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        _ERROR_EXAMPLES[404][0], *_ERROR_EXAMPLES[422], _ERROR_EXAMPLES[401][0]]})

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
    """OpenAPI `responses` for these error statuses, all of the one shape ErrorOut, each with
    what it says (the media type's named examples)."""
    return {status: {"model": ErrorOut, "description": _ERRORS[status], "content": {"application/json": {"examples": {
        example["error"]: {"value": example} for example in _ERROR_EXAMPLES[status]}}}} for status in statuses}


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
# The example of an upload's file field: the bytes of a small CSV that loads without a problem
# (a roll, and a vehicles source, with their Chinese headers).
ROLL_CSV_EXAMPLE = (
    "家庭编号,姓名,身份证号,救助类别,行政区划代码,月保障金额,与户主关系,申报月收入,纳入日期\n"
    f"320303000000123,张三,{ID_EXAMPLE},低保,320303001,880,户主,0,2021-03-01\n"
    "320303000000123,李秀英,320303196503024029,低保,320303001,880,配偶,0,2021-03-01\n"
)
SOURCE_CSV_EXAMPLE = f"身份证号,号牌号码,车辆类型,购置价格,车辆状态\n{ID_EXAMPLE_X},苏C8K2M7,小型汽车,156400,正常\n"
# A date in a multipart form, where a field left empty means "not given" (a form has no null).
FormDate = Annotated[date | None, BeforeValidator(_form_date), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}]})]
# What a client sends is taken as typed (no "880" for 880, no 0 for false: `strict` on numbers
# and flags) and unknown fields are refused: a misspelt field (`declared_income`, `recrod`) must
# not pass silently as its default.
_STRICT = {"extra": "forbid"}


class MemberIn(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra={"examples": [{
        "id_number": ID_EXAMPLE, "name": "张三", "program": "dibao", "region_code": "320303001",
        "benefit_monthly": 880, "declared_income_monthly": 0, "relation": "户主"}]})

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


def _rule(rule_id: str) -> dict[str, Any]:
    """A flag's fields that come from the rule catalogue."""
    rule = RULES[rule_id]
    return {"rule_id": rule.id, "rule_label_zh": rule.label_zh, "rule_label_en": rule.label_en,
            "severity": rule.severity, "cadence": rule.cadence, "level": rule.level}


# What POST /checks finds for the CheckIn example: 张三 died in January and is still paid.
_DECEASED_FLAG = {
    **_rule("deceased"), "program": "dibao", "household_id": "APP-2026-000123", "id_number": ID_EXAMPLE,
    "roll_id_number": ID_EXAMPLE, "name": "张三", "region_code": "320303001", "source": "deaths,hukou",
    "match_method": "exact", "match_score": 100.0,
    "evidence": {"records": [{"record_source": "deaths", "date": "2026-01-04"},
                             {"record_source": "hukou", "date": "2026-01-04"}],
                 "death_date": "2026-01-04", "overpayment": 4400.0},
    "overpayment": 4400.0, "as_of": "2026-06-30", "flag_id": None,
}
_VEHICLE_FLAG = {
    **_rule("vehicle_owned"), "program": "dibao", "household_id": "320303000000054", "id_number": ID_EXAMPLE_X,
    "roll_id_number": ID_EXAMPLE_X, "name": "周庆俊", "region_code": "320303001005", "source": "vehicles",
    "match_method": "exact", "match_score": 100.0,
    "evidence": {"records": [{"id_number": ID_EXAMPLE_X, "plate": "苏C8K2M7", "vehicle_type": "car",
                              "purchase_price": 156400.0, "status": "normal"}]},
    "overpayment": None, "as_of": "2026-06-30", "flag_id": 47,
}
# As an auditor sees a flag: IDs masked, in the evidence too.
_INCOME_FLAG_MASKED = {
    **_rule("income_over_standard"), "program": "dibao", "household_id": "320303000000087",
    "id_number": "320303********4029", "roll_id_number": "320303********4029", "name": "李秀英",
    "region_code": "320303001002", "source": "pensions,payroll", "match_method": "exact", "match_score": 100.0,
    "evidence": {"records": [{"id_number": "320303********4029", "component": "pension", "detail": "employee",
                              "amount": 2549.07},
                             {"id_number": "320303********3026", "component": "declared_income", "detail": None,
                              "amount": 194.5}],
                 "total": 2743.57, "household_size": 3, "per_capita": 914.52, "standard": 880.0},
    "overpayment": None, "as_of": "2026-06-30", "flag_id": 52,
}


class FlagOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DECEASED_FLAG, _VEHICLE_FLAG]})

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


_SKIPPED = {"rule_id": "assets_over_limit", "reason": "source deposits not provided"}


class SkippedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_SKIPPED]})

    rule_id: str
    reason: str


# The snapshot date of each source held (deposits are not: assets_over_limit is skipped).
_SNAPSHOT_DATES = {"roll": "2026-06-30", "hukou": "2026-06-30", "deaths": "2026-06-30", "medical": "2026-06-25",
                   "vehicles": "2026-06-15", "farm_machinery": "2026-04-10", "property": "2026-06-15",
                   "housing_fund": "2026-06-15", "prisoners": "2026-06-01", "cadre_relatives": "2026-04-01",
                   "payroll": "2026-06-01", "pensions": "2026-06-30"}


class CheckOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "household_id": "APP-2026-000123", "as_of": "2026-06-30", "flags": [_DECEASED_FLAG],
        "ran": [rule_id for rule_id in RULES if rule_id != _SKIPPED["rule_id"]], "skipped": [_SKIPPED],
        "warnings": [], "snapshots": _SNAPSHOT_DATES, "run_id": None}]})

    household_id: str
    as_of: date
    flags: list[FlagOut]
    ran: list[str]
    skipped: list[SkippedOut]
    warnings: list[str] = Field(description="rows kept with a warning, e.g. an invalid ID (id_invalid reports it)")
    snapshots: dict[str, date] = Field(description="the snapshot date of each source the check read")
    run_id: int | None = Field(None, description="the recorded run, when `record` was asked for")


_STORED_VEHICLE = {
    **_VEHICLE_FLAG, "id": 47, "status": "assigned", "status_zh": STATUS_ZH["assigned"],
    "status_at": "2026-07-02T09:15:00Z", "opened_at": "2026-07-01T02:00:41Z", "days_open": 14, "overdue": False,
    "assignee": "王芳", "first_run_id": 12, "last_run_id": 12,
}
_STORED_INCOME_MASKED = {
    **_INCOME_FLAG_MASKED, "id": 52, "status": "open", "status_zh": STATUS_ZH["open"],
    "status_at": "2026-01-05T02:00:37Z", "opened_at": "2026-01-05T02:00:37Z", "days_open": 191, "overdue": True,
    "assignee": None, "first_run_id": 3, "last_run_id": 12,
}


class StoredFlagOut(FlagOut):
    model_config = ConfigDict(json_schema_extra={"examples": [_STORED_VEHICLE, _STORED_INCOME_MASKED]})

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
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"total": 38, "limit": 2, "offset": 0, "items": [_STORED_VEHICLE, _STORED_INCOME_MASKED]}]})

    total: int = Field(description="matching flags within your region")
    limit: int
    offset: int
    items: list[StoredFlagOut]


_EVENTS = [
    {"id": 47, "kind": "raised", "kind_zh": "新发现", "at": "2026-07-01T02:00:41Z", "by": "system", "run_id": 12,
     "detail": {"evidence": _VEHICLE_FLAG["evidence"]}},
    {"id": 331, "kind": "assigned", "kind_zh": "分派", "at": "2026-07-02T09:15:00Z", "by": "李建国", "run_id": None,
     "detail": {"to": "王芳"}},
    {"id": 358, "kind": "visited", "kind_zh": "入户核查", "at": "2026-07-08T15:30:12Z", "by": "王芳", "run_id": None,
     "detail": {"living": "两间平房，车辆停放在院内", "note": "入户核查，户主称车辆为亲戚借用", "income": 650.0,
                "expenditure": 900.0}},
]


class EventOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EVENTS[2], _EVENTS[1]]})

    id: int
    kind: str
    kind_zh: str
    at: datetime
    by: str
    run_id: int | None
    detail: Any


class FlagDetailOut(StoredFlagOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **_STORED_VEHICLE, "status": "visited", "status_zh": STATUS_ZH["visited"], "status_at": _EVENTS[2]["at"],
        "events": _EVENTS}]})

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


_PROBLEMS = [
    {"file": "云龙区名册2026-06.xlsx", "row": 15, "column": "benefit_monthly", "column_zh": "月保障金额", "value": "880元/月",
     "message": "金额不是有效数字 (amount is not a number)"},
    {"file": "云龙区名册2026-06.xlsx", "row": 212, "column": "region_code", "column_zh": "行政区划代码",
     "value": "320311004", "message": "行政区划 320311004 不在您的辖区 320303 内 (outside your region 320303)"},
]


class ProblemOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": _PROBLEMS})

    file: str
    row: int | None
    column: str | None
    column_zh: str | None = None
    value: str | None
    message: str


class BatchOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": 9, "status": "completed", "status_zh": "已完成", "step": "完成 completed", "progress": 1.0,
         "file_name": "云龙区名册2026-06.xlsx", "as_of": "2026-06-30", "by": "李建国", "created_at": "2026-07-01T01:12:03Z",
         "finished_at": "2026-07-01T01:12:41Z", "rows": 1834, "households": 702, "rejects": 2, "flags": 37,
         "problems": _PROBLEMS, "run_id": 13, "error": None},
        {"id": 10, "status": "queued", "status_zh": "排队中", "step": "排队中 queued", "progress": 0.0,
         "file_name": "云龙区名册2026-07.csv", "as_of": "2026-07-31", "by": "李建国", "created_at": "2026-08-01T01:05:00Z",
         "finished_at": None, "rows": None, "households": None, "rejects": None, "flags": None, "problems": [],
         "run_id": None, "error": None},
    ]})

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
        "examples": [{"as_of": "2026-06-30", "cadences": ["monthly"]}, {"rules": ["vehicle_owned", "property_excess"]}],
        "not": {"required": ["rules", "cadences"]}})

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


_RUN = {"id": 13, "trigger": "api", "status": "completed", "as_of": "2026-06-30", "started_at": "2026-07-01T02:00:00Z",
        "finished_at": "2026-07-01T02:00:41Z", "found": 41, "raised": 6, "reopened": 1, "seen": 34, "cleared": 3,
        "error": None}


class RunOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        _RUN, {**_RUN, "id": 14, "status": "running", "started_at": "2026-07-01T03:00:00Z", "finished_at": None,
               "found": None, "raised": None, "reopened": None, "seen": None, "cleared": None}]})

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


_RUN_RULES = [
    {"rule_id": "deceased", "outcome": "ran", "reason": None, "flags": 10, "same_as_run_id": None},
    {"rule_id": "hukou_not_found", "outcome": "unchanged", "reason": "inputs unchanged since run 12 输入未变化",
     "flags": None, "same_as_run_id": 12},
    {"rule_id": "assets_over_limit", "outcome": "skipped", "reason": "source deposits not provided (no snapshot held)",
     "flags": None, "same_as_run_id": None},
]


class RunRuleOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": _RUN_RULES})

    rule_id: str
    outcome: str
    reason: str | None
    flags: int | None
    same_as_run_id: int | None


class RunDetailOut(RunOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **_RUN, "timings": {"load": 1.204, "rules": 38.517, "store": 0.915, "total": 40.702},
        "inputs": {key: 31 - number for number, key in enumerate(_SNAPSHOT_DATES)},
        "rules": _RUN_RULES}]})

    timings: dict[str, float] | None
    inputs: dict[str, int] = Field(description="the snapshot id of each input")
    rules: list[RunRuleOut]


class SourceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"key": "roll", "zh": "救助对象名册", "cadence": "monthly", "snapshot_id": 31, "snapshot_date": "2026-06-30",
         "received_at": "2026-07-01T01:10:22Z", "rows": 1834, "rejects": 2, "age_days": 1, "state": "current",
         "snapshots": 6},
        {"key": "deposits", "zh": "银行存款", "cadence": "annual", "snapshot_id": None, "snapshot_date": None,
         "received_at": None, "rows": None, "rejects": None, "age_days": None, "state": "missing", "snapshots": 0},
    ]})

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
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": 27, "key": "vehicles", "snapshot_date": "2026-06-15", "file_name": "车辆登记2026Q2.xlsx", "rows": 612,
         "rejects": 1, "warnings": 0, "new": True, "problems": [
             {"file": "车辆登记2026Q2.xlsx", "row": 37, "column": "id_number", "column_zh": "身份证号",
              "value": "3203031974101144", "message": "身份证号应为 18 位，实为 16 位 (ID must have 18 characters, has 16)"}]},
    ]})

    id: int
    key: str
    snapshot_date: date
    file_name: str
    rows: int
    rejects: int
    warnings: int
    new: bool = Field(description="false: this very file was already held; nothing was done")
    problems: list[ProblemOut]


def _rule_out(rule_id: str) -> dict[str, Any]:
    """A catalogue entry as GET /rules answers it."""
    rule = RULES[rule_id]
    return {"id": rule.id, "label_zh": rule.label_zh, "label_en": rule.label_en, "cadence": rule.cadence,
            "programs": list(rule.programs) if rule.programs is not None else None, "level": rule.level,
            "severity": rule.severity, "sources": [*rule.sources, *rule.optional_sources], "condition": rule.condition}


class RuleOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_rule_out("vehicle_owned"), _rule_out("deceased")]})

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
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "database": "ok", "checker": "ok", "version": "0.1.0", "snapshots": _SNAPSHOT_DATES,
         "uptime_seconds": 86400.2},
        {"status": "degraded", "database": "error: (sqlite3.OperationalError) unable to open database file",
         "checker": "stopped: exit code -9, started again by the next check", "version": "0.1.0", "snapshots": {},
         "uptime_seconds": 12.5},
    ]})

    status: Literal["ok", "degraded"]
    database: str
    checker: str = Field(description="the check process (POST /checks, batches): ok, or why not")
    version: str
    snapshots: dict[str, date]
    uptime_seconds: float


_AUDIT = [
    {"id": 5120, "at": "2026-07-08T15:30:12Z", "user_name": "王芳", "role": "caseworker", "address": "10.32.3.41",
     "method": "POST", "path": "/api/v1/flags/47/events", "action": "write", "status_code": 201,
     "detail": {"route": "/flags/{flag_id}/events", "ms": 18.4}},
    {"id": 5119, "at": "2026-07-08T15:29:50Z", "user_name": "王芳", "role": "caseworker", "address": "10.32.3.41",
     "method": "GET", "path": "/api/v1/flags?status=assigned&limit=50", "action": "read", "status_code": 200,
     "detail": {"route": "/flags", "ms": 42.7}},
]


class AuditOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": _AUDIT})

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
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"total": 5120, "limit": 2, "offset": 0, "items": _AUDIT}]})

    total: int
    limit: int
    offset: int
    items: list[AuditOut]


def restore_examples(document: dict[str, Any]) -> dict[str, Any]:
    """The generated OpenAPI document with the examples above whole again.

    FastAPI drops every null from the document it generates (fastapi/fastapi#5559), examples
    included: a queued batch's `"finished_at": null` goes, and with it a field the schema
    requires, so the example no longer fits its own schema. This puts back each model's examples
    and each error response's, as written here. In place and idempotent; returns `document`.
    """
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        model = globals().get(name)
        if isinstance(model, type) and issubclass(model, BaseModel) and name in __all__:
            extra = model.model_config.get("json_schema_extra")
            if isinstance(extra, dict) and "examples" in extra:
                schema["examples"] = copy.deepcopy(extra["examples"])
    error_ref = "#/components/schemas/ErrorOut"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get("application/json", {})
                if media.get("schema", {}).get("$ref") == error_ref and status.isdigit() \
                        and int(status) in _ERROR_EXAMPLES:
                    media["examples"] = {example["error"]: {"value": copy.deepcopy(example)}
                                         for example in _ERROR_EXAMPLES[int(status)]}
    return document
