"""Uploaded roll batches, and the problems found in a file's rows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .examples import PROBLEMS, WARNINGS

__all__ = ["ProblemOut", "BatchOut"]


class ProblemOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": PROBLEMS})

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
         "problems": PROBLEMS, "warnings": WARNINGS, "run_id": 13, "error": None},
        {"id": 10, "status": "queued", "status_zh": "排队中", "step": "排队中 queued", "progress": 0.0,
         "file_name": "云龙区名册2026-07.csv", "as_of": "2026-07-31", "by": "李建国", "created_at": "2026-08-01T01:05:00Z",
         "finished_at": None, "rows": None, "households": None, "rejects": None, "flags": None, "problems": [], "warnings": [],
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
    warnings: list[ProblemOut] = Field(default_factory=list, description=(
        "rows kept with a warning (an invalid ID: id_invalid flags it; an ID Excel's number format "
        "destroyed) and rows passed over (a 合计 row), named as problems are"))
    run_id: int | None
    error: str | None
