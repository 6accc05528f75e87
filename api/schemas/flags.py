"""Stored flags, their review events, and a review action."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from store.lifecycle import STATUS_ZH

from .checks import FlagOut
from .common import STRICT
from .examples import EVENTS, STORED_INCOME_MASKED, STORED_VEHICLE

__all__ = ["StoredFlagOut", "FlagPage", "EventOut", "FlagDetailOut", "EVENT_NEEDS", "EventIn"]


class StoredFlagOut(FlagOut):
    model_config = ConfigDict(json_schema_extra={"examples": [STORED_VEHICLE, STORED_INCOME_MASKED]})

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
        {"total": 38, "limit": 2, "offset": 0, "items": [STORED_VEHICLE, STORED_INCOME_MASKED]}]})

    total: int = Field(description="matching flags within your region")
    limit: int
    offset: int
    items: list[StoredFlagOut]


class EventOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EVENTS[2], EVENTS[1]]})

    id: int
    kind: str
    kind_zh: str
    at: datetime
    by: str
    run_id: int | None
    detail: Any


class FlagDetailOut(StoredFlagOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **STORED_VEHICLE, "status": "visited", "status_zh": STATUS_ZH["visited"], "status_at": EVENTS[2]["at"],
        "events": EVENTS}]})

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
    model_config = ConfigDict(**STRICT, json_schema_extra={"allOf": _needs_schema(), "examples": [
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
