"""Command-line parameter types shared by every command group (engine.cli, store.cli)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import click

__all__ = ["ISO_DATE"]


class _IsoDate(click.ParamType):
    """YYYY-MM-DD exactly (date.fromisoformat alone would also take 20260630 or 2026-W26)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):  # \d would take full-width digits
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        self.fail(f"{value!r} 不是有效日期，应为 YYYY-MM-DD (not a date: use YYYY-MM-DD)", param, ctx)


ISO_DATE = _IsoDate()
