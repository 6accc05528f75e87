"""Who may do what, as data: one table of permissions by role, the region scope of a user, and
ID masking for the roles that do not need IDs in full.

Scope: a user sees what lies under their region prefix (a caseworker's township, a supervisor's
county or city). Anything outside it is answered as if it did not exist — 404, never 403, and
it is not counted either — so that probing cannot tell another township's flags exist.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import AccessDenied

__all__ = ["PERMISSIONS", "SUPERVISOR_ACTIONS", "needs_supervisor", "allowed", "require", "narrow", "in_scope", "mask_id",
           "mask_evidence", "masked", "parse_evidence", "sees_full_ids"]

CASEWORKER, SUPERVISOR, AUDITOR, SYSTEM = "caseworker", "supervisor", "auditor", "system"

PERMISSIONS: dict[str, frozenset[str]] = {
    "flags:read": frozenset({CASEWORKER, SUPERVISOR, AUDITOR, SYSTEM}),
    "flags:review": frozenset({CASEWORKER, SUPERVISOR}),
    "checks:run": frozenset({SYSTEM, CASEWORKER, SUPERVISOR}),
    "batches:write": frozenset({SYSTEM, CASEWORKER, SUPERVISOR}),
    "batches:read": frozenset({SYSTEM, CASEWORKER, SUPERVISOR, AUDITOR}),
    "runs:read": frozenset({CASEWORKER, SUPERVISOR, AUDITOR, SYSTEM}),
    "runs:start": frozenset({SYSTEM, SUPERVISOR}),
    "sources:read": frozenset({CASEWORKER, SUPERVISOR, AUDITOR, SYSTEM}),
    "sources:write": frozenset({SYSTEM}),
    "audit:read": frozenset({AUDITOR}),
}
# Review actions that decide a household's benefit, and the recording that it was carried out:
# a supervisor's (审核把关), never the caseworker who visited alone.
SUPERVISOR_ACTIONS = {("confirm", "stop"), ("confirm", "recover"), ("resolve", None)}
# Undoing or overruling a decision is one too: reopening a confirmed or resolved flag, and
# deciding an appeal against a confirmation (confirming or dismissing the appealed flag).
_SUPERVISOR_ON = {("reopen", "confirmed"), ("reopen", "resolved"), ("confirm", "appealed"), ("dismiss", "appealed")}
_FULL_IDS = frozenset({CASEWORKER, SUPERVISOR, SYSTEM})  # they act on the person; an auditor reads


def needs_supervisor(action: str, confirm_action: str | None, status: str) -> bool:
    """Whether review `action` on a flag in `status` is a supervisor's alone."""
    decision = (action, confirm_action if action == "confirm" else None)
    return decision in SUPERVISOR_ACTIONS or (action, status) in _SUPERVISOR_ON


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def require(role: str, permission: str) -> None:
    if not allowed(role, permission):
        raise AccessDenied(f"角色 {role} 无权执行此操作 (role {role!r} may not {permission.replace(':', ' ')})")


def narrow(user_region: str, requested: str | None) -> str | None:
    """The region prefix to filter by: the requested one within the user's scope; None when the
    two do not overlap (then nothing is visible)."""
    if not requested:
        return user_region
    if requested.startswith(user_region):
        return requested
    if user_region.startswith(requested):
        return user_region
    return None


def in_scope(user_region: str, region_code: str | None) -> bool:
    return bool(region_code) and str(region_code).startswith(user_region)


def sees_full_ids(role: str) -> bool:
    return role in _FULL_IDS


def mask_id(value: str | None) -> str | None:
    """320303********1234: the region of birth and the last four stay, the birth date does not."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


# 15 to 18 ID characters inside text (evidence JSON, a problem's cell as written): every
# ID-shaped value, wherever the record put it, and written as people write IDs: with spaces or
# hyphens between the digits (which normalization drops), an x anywhere, full-width digits.
_SEPARATOR = r"[ \t\u3000\-\u2010-\u2015\u2212\uFF0D]"
_ID_CHAR = r"[\dXx\uFF38\uFF58]"  # \d: every Unicode digit, full-width ones too
_ID_IN_TEXT = re.compile(
    rf"(?<![0-9A-Za-z])\d{_SEPARATOR}*(?:{_ID_CHAR}{_SEPARATOR}*){{13,16}}{_ID_CHAR}(?![0-9A-Za-z])")
# A birth date beside a masked ID gives the ID back (elderly_underage shows the age as well).
_BIRTH_DATE = re.compile(r'("birth_date"\s*:\s*")[^"]*(")')


def _masked_match(match: re.Match[str]) -> str:
    """The region of birth (first 6 ID characters) and the last 4 kept, separators as written."""
    text = match.group(0)
    positions = [i for i, ch in enumerate(text) if re.fullmatch(_ID_CHAR, ch)]
    hidden = set(positions[6:-4])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(text))


def mask_evidence(evidence: str | None) -> str | None:
    if evidence is None:
        return None
    return _BIRTH_DATE.sub(r"\1****-**-**\2", _ID_IN_TEXT.sub(_masked_match, evidence))


def masked(role: str, row: dict[str, Any], id_fields: tuple[str, ...] = ("id_number", "roll_id_number")) -> dict[str, Any]:
    """`row` with its IDs and evidence masked when `role` does not see IDs in full."""
    if sees_full_ids(role):
        return row
    out = dict(row)
    for name in id_fields:
        if name in out:
            out[name] = mask_id(out[name])
    if "evidence" in out:
        out["evidence"] = mask_evidence(out["evidence"])
    return out


def parse_evidence(evidence: str | None) -> Any:
    if not evidence:
        return None
    try:
        return json.loads(evidence)
    except ValueError:
        return evidence
