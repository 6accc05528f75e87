"""The vocabulary the data contracts are declared in.

A dataset is a list of columns; a column has a canonical name, its Chinese header, a kind that
says how a cell is read, whether it is required, and for coded columns the allowed codes with
their Chinese labels. Loaders, validation messages, the XLSX output and the API's JSON Schema are
all derived from these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Kind", "Column", "Dataset"]

# How a cell is read:
#   text    free text, trimmed
#   id      resident ID number, normalized per GB 11643-1999 (engine.ids)
#   region  administrative region code, 6-12 digits
#   code    one of `codes` (canonical code, its Chinese label, or one of `code_aliases`)
#   date    YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or an Excel date cell
#   month   YYYY-MM (also YYYY/MM, YYYYMM, or a date of which the month is taken)
#   money   yuan, decimal, not negative
#   number  decimal, not negative (areas)
Kind = Literal["text", "id", "region", "code", "date", "month", "money", "number"]


@dataclass(frozen=True)
class Column:
    name: str
    zh: str
    kind: Kind = "text"
    required: bool = True
    codes: dict[str, str] | None = None  # canonical code -> Chinese label
    aliases: tuple[str, ...] = ()  # further headers seen in real exports
    # canonical code -> further spellings seen in real exports (城市低保 and 农村低保 are 低保)
    code_aliases: dict[str, tuple[str, ...]] | None = None
    default: str | None = None  # value for an optional column that is absent or empty
    doc: str = ""

    @property
    def headers(self) -> tuple[str, ...]:
        """Every header accepted for this column, canonical first."""
        return (self.name, self.zh, *self.aliases)

    def code_lookup(self) -> dict[str, str]:
        """Accepted spelling (code, Chinese label or one of its `code_aliases`, case-folded) ->
        canonical code."""
        lookup: dict[str, str] = {}
        for code, label in (self.codes or {}).items():
            for spelling in (code, label, *(self.code_aliases or {}).get(code, ())):
                lookup[spelling.casefold()] = code
        return lookup


@dataclass(frozen=True)
class Dataset:
    key: str
    zh: str
    columns: tuple[Column, ...]
    cadence: str | None = None  # default cadence of a source; None for the roll and outputs
    doc: str = ""
    # Names of columns that identify a record for evidence (plate, certificate number, ...).
    identity: tuple[str, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.key} has no column {name!r}")

    def header_lookup(self) -> dict[str, str]:
        """Accepted header (case-folded, trimmed) -> canonical column name."""
        return {h.strip().casefold(): c.name for c in self.columns for h in c.headers}
