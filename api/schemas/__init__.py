"""Request and response models: `…In` is what a client sends, `…Out` what it gets back. Field
descriptions and examples feed the OpenAPI page (/docs).

One module per family of routes (api.routes): checks, flags, batches, runs, sources, meta,
audit; what they share in `common`, their examples in `examples`."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from .audit import AuditOut, AuditPage
from .batches import BatchOut, ProblemOut
from .checks import CheckIn, CheckOut, FlagOut, MemberIn, SkippedOut
from .common import (
    AUTH_ERRORS,
    BINARY,
    ROLL_CSV_EXAMPLE,
    SOURCE_CSV_EXAMPLE,
    Cadence,
    ErrorOut,
    FormDate,
    IsoDate,
    IsoDateTime,
    Program,
    RowId,
    RuleId,
    Severity,
    Status,
    error_responses,
)
from .examples import ERROR_EXAMPLES
from .flags import EVENT_NEEDS, EventIn, EventOut, FlagDetailOut, FlagPage, StoredFlagOut
from .meta import HealthOut, RuleOut
from .runs import RunDetailOut, RunIn, RunOut, RunRuleOut
from .sources import SnapshotOut, SourceOut

__all__ = [
    "MemberIn", "CheckIn", "FlagOut", "CheckOut", "SkippedOut", "StoredFlagOut", "FlagPage", "EventOut",
    "FlagDetailOut", "EventIn", "BatchOut", "ProblemOut", "RunIn", "RunOut", "RunDetailOut", "RunRuleOut",
    "SourceOut", "SnapshotOut", "RuleOut", "HealthOut", "AuditOut", "AuditPage", "ErrorOut", "AUTH_ERRORS",
    "error_responses", "RowId", "IsoDate", "FormDate", "IsoDateTime", "Program", "Severity", "Cadence", "RuleId",
    "Status", "EVENT_NEEDS", "BINARY", "ROLL_CSV_EXAMPLE", "SOURCE_CSV_EXAMPLE", "restore_examples",
]


def restore_examples(document: dict[str, Any]) -> dict[str, Any]:
    """The generated OpenAPI document with the examples above whole again.

    FastAPI drops every null from the document it generates (fastapi/fastapi#5559), examples
    included: a queued batch's `"finished_at": null` goes, and with it a field the schema
    requires, so the example no longer fits its own schema. This puts back each model's examples
    and each error response's, as written here. In place and idempotent; returns `document`.
    """
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        model = globals().get(name)
        if isinstance(model, type) and issubclass(model, BaseModel) and name in __all__:
            extra = model.model_config.get("json_schema_extra")
            if isinstance(extra, dict) and "examples" in extra:
                schema["examples"] = copy.deepcopy(extra["examples"])
    error_ref = "#/components/schemas/ErrorOut"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get("application/json", {})
                if media.get("schema", {}).get("$ref") == error_ref and status.isdigit() \
                        and int(status) in ERROR_EXAMPLES:
                    media["examples"] = {example["error"]: {"value": copy.deepcopy(example)}
                                         for example in ERROR_EXAMPLES[int(status)]}
    return document
