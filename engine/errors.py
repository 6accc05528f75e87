"""The one exception tree of the engine.

    CrosscheckError                 anything the engine refuses, with a message for a person
    ├── InputError                  an input file cannot be used; carries every Problem found
    │   ├── FileUnreadable          missing, empty, undecodable, not a table, XLSX with no sheet
    │   ├── SchemaError             required column missing, duplicated header, wrong columns
    │   └── TooLarge                an upload over the size limit, an XLSX that expands too far
    ├── PolicyError                 the policy TOML has an unknown key or a value of the wrong type
    ├── SelectionError              an unknown rule id, cadence or engine was asked for, or an
    │                               engine that is not installed (Spark without PySpark or Java)
    └── StoreError                  the store (database, data directory) refuses an operation
        ├── StoreBusy               another run holds the store's run lock; try again later
        ├── NotFound                no run, flag, snapshot or household with that id
        ├── ReviewError             a review action the flag's current status does not allow
        │   └── ReviewIncomplete    a review that lacks what its action needs (a reason, an amount)
        └── AccessDenied            the user's role does not allow this action
            └── NotAuthenticated    no token, an unknown token or a disabled user

Problems found in single rows never raise: the loaders return them beside the usable rows, so
that nothing valid is lost and every problem is reported together. Engine errors know nothing of
HTTP or exit codes; the CLI and the API map them in one place each.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Problem",
    "CrosscheckError",
    "InputError",
    "FileUnreadable",
    "SchemaError",
    "PolicyError",
    "SelectionError",
    "StoreError",
    "StoreBusy",
    "NotFound",
    "ReviewError",
    "ReviewIncomplete",
    "TooLarge",
    "AccessDenied",
    "NotAuthenticated",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as a spreadsheet user would find it.

    `row` is the row number as shown by Excel: the header is row 1, the first record row 2.
    `row` and `column` are None for problems of the whole file.
    """

    file: str
    message: str
    row: int | None = None
    column: str | None = None
    column_zh: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(
                f"column {self.column}" + (f" ({self.column_zh})" if self.column_zh else "")
            )
        if self.value is not None:
            parts.append(f"value {self.value!r}")
        return ", ".join(parts) + ": " + self.message

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "column_zh": self.column_zh,
            "value": self.value,
            "message": self.message,
        }


class CrosscheckError(Exception):
    """Base of every error the engine raises on purpose."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class InputError(CrosscheckError):
    """An input file cannot be used at all."""


class FileUnreadable(InputError):
    """The file is missing, empty, undecodable, not a table, or an XLSX without a sheet."""


class SchemaError(InputError):
    """The file's header does not fit the dataset's declaration."""


class PolicyError(CrosscheckError):
    """The policy file has an unknown key, a wrong type, or is not TOML."""


class SelectionError(CrosscheckError):
    """An unknown rule id, cadence or engine was asked for, or an engine that is not installed."""


class StoreError(CrosscheckError):
    """The store cannot do what was asked: unreachable database, unwritable data directory,
    a schema newer than this program, no snapshot to run on."""


class StoreBusy(StoreError):
    """Another process holds the store's run lock (a run or a review is being recorded) for
    longer than the lock timeout."""


class NotFound(StoreError):
    """No run, flag, snapshot or household with the id given."""


class ReviewError(StoreError):
    """A review action that the flag's current status does not allow."""


class ReviewIncomplete(ReviewError):
    """A review action that lacks a detail it needs (a dismissal without a reason, a recovery
    without an amount), or whose detail is not valid: the input, not the flag's status."""


class TooLarge(InputError):
    """An upload over the configured size, or an XLSX whose sheets expand beyond a sane size."""


class AccessDenied(StoreError):
    """The user is known but their role does not allow the action. (What lies outside a
    user's region is NotFound instead: it is answered as if it did not exist.)"""


class NotAuthenticated(AccessDenied):
    """No token, a token nobody holds, or a disabled user."""
