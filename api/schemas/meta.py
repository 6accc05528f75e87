"""The rule catalogue and the service's health."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .examples import SNAPSHOT_DATES, rule_out

__all__ = ["RuleOut", "HealthOut"]


class RuleOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [rule_out("vehicle_owned"), rule_out("deceased")]})

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
        {"status": "ok", "database": "ok", "checker": "ok", "version": "0.1.0", "snapshots": SNAPSHOT_DATES,
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
