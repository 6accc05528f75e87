"""The audit log: who did what, when, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from .examples import AUDIT

__all__ = ["AuditOut", "AuditPage"]


class AuditOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": AUDIT})

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
        {"total": 5120, "limit": 2, "offset": 0, "items": AUDIT}]})

    total: int
    limit: int
    offset: int
    items: list[AuditOut]
