"""What every family of models shares: the catalogue's literals, the one error shape, dates
taken as ISO text only, and the strict reading of what a client sends."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from engine.rules import RULES
from schemas import PROGRAM_ALIASES, PROGRAMS
from store.lifecycle import STATUS_ZH

from .examples import ERROR_EXAMPLES, ID_EXAMPLE, ID_EXAMPLE_X

__all__ = ["Program", "ProgramIn", "Severity", "Cadence", "RuleId", "Status", "ErrorOut", "error_responses", "AUTH_ERRORS",
           "RowId", "IsoDate", "IsoDateTime", "FormDate", "BINARY", "ROLL_CSV_EXAMPLE", "SOURCE_CSV_EXAMPLE", "STRICT"]

Program = Literal[tuple(PROGRAMS)]  # type: ignore[valid-type]
# As roll files are read (schemas.PROGRAM_ALIASES): 低保, 城市低保, 五保… are taken for their code.
_PROGRAM_CODES = {**{label: code for code, label in PROGRAMS.items()},
                  **{alias: code for code, aliases in PROGRAM_ALIASES.items() for alias in aliases}}
ProgramIn = Annotated[Program, BeforeValidator(  # type: ignore[valid-type]
    lambda value: _PROGRAM_CODES.get(value.strip(), value) if isinstance(value, str) else value)]
Severity = Literal["high", "medium", "low"]
Cadence = Literal["monthly", "quarterly", "semiannual", "annual"]
RuleId = Literal[tuple(RULES)]  # type: ignore[valid-type]
Status = Literal[tuple(STATUS_ZH)]  # type: ignore[valid-type]


class ErrorOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        ERROR_EXAMPLES[404][0], *ERROR_EXAMPLES[422], ERROR_EXAMPLES[401][0]]})

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
        example["error"]: {"value": example} for example in ERROR_EXAMPLES[status]}}}} for status in statuses}


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
STRICT = {"extra": "forbid"}


