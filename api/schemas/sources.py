"""The sources held, and a delivery received as a snapshot."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .batches import ProblemOut

__all__ = ["SourceOut", "SnapshotOut"]


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
