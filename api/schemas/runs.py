"""Runs of the rules over the held snapshots."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import STRICT, Cadence, IsoDate, RuleId
from .examples import RUN, RUN_RULES, SNAPSHOT_DATES

__all__ = ["RunIn", "RunOut", "RunRuleOut", "RunDetailOut"]


class RunIn(BaseModel):
    """The rules to run: chosen by id, or by cadence (not both: together they could select
    nothing); every rule when neither is given."""

    model_config = ConfigDict(**STRICT, json_schema_extra={
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


class RunOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        RUN, {**RUN, "id": 14, "status": "running", "started_at": "2026-07-01T03:00:00Z", "finished_at": None,
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


class RunRuleOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": RUN_RULES})

    rule_id: str
    outcome: str
    reason: str | None
    flags: int | None
    same_as_run_id: int | None


class RunDetailOut(RunOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **RUN, "timings": {"load": 1.204, "rules": 38.517, "store": 0.915, "total": 40.702},
        "inputs": {key: 31 - number for number, key in enumerate(SNAPSHOT_DATES)},
        "rules": RUN_RULES}]})

    timings: dict[str, float] | None
    inputs: dict[str, int] = Field(description="the snapshot id of each input")
    rules: list[RunRuleOut]
