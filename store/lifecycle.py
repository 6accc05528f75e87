"""The flag lifecycle: append-only events, the status they imply, and the rules a run applies.

Events (who and when on each; `system` for a run's):
    raised      a run found a finding no flag had                       (an alert)
    seen        a run found it again                                     (no alert)
    cleared     a run of its rule did not find it any more
    reopened    found again after it was cleared, or its evidence changed after a dismissal or
                resolution (an alert); or a person reopened it
    assigned    given to a caseworker                      detail: to
    visited     the home visit (三核查)                     detail: income, expenditure, living, note
    confirmed   the finding holds                          detail: action stop|reduce|recover, amount
    dismissed   the finding does not hold                  detail: reason
    appealed    the household appeals the decision          detail: note
    resolved    the confirmed action was carried out        detail: note, amount

Status is a fold of the events (`derive_status`); `flags.status` caches it and is written in the
same transaction as the event. What a run does to each flag of a rule it ran (`decide`):

    found, no flag                       → raised
    found, flag open/assigned/visited/appealed/confirmed → seen (confirmed stays until resolved)
    found, dismissed or resolved, same fingerprint → seen (stays dismissed / resolved)
    found, dismissed or resolved, evidence changed → reopened
    found, cleared                        → reopened
    not found, open/assigned/visited      → cleared
    not found, anything else              → nothing (decisions and appeals stay with people)

A flag is overdue when it needs a person (open, assigned, visited, appealed) and was opened
(raised, reopened or appealed) longer ago than the configured number of days.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.errors import NotFound, ReviewError, ReviewIncomplete

from .models import Flag, FlagEvent

__all__ = [
    "EVENT_KINDS",
    "FOUND",
    "STATUS_ZH",
    "EVENT_ZH",
    "NEEDS_PERSON",
    "REVIEWS",
    "SYSTEM",
    "Counts",
    "next_status",
    "derive_status",
    "decide",
    "apply",
    "looked_at",
    "review",
]

SYSTEM = "system"
EVENT_KINDS = ("raised", "seen", "cleared", "reopened", "assigned", "visited", "confirmed", "dismissed",
               "appealed", "resolved")
FOUND = ("raised", "seen", "reopened")  # the events a run gives the flags it finds (apply)
NEEDS_PERSON = ("open", "assigned", "visited", "appealed")
CLEARABLE = ("open", "assigned", "visited")
DECIDED = ("dismissed", "resolved")
STATUS_ZH = {
    "open": "待核查",
    "assigned": "已分派",
    "visited": "已入户核查",
    "confirmed": "已确认",
    "dismissed": "已排除",
    "appealed": "申诉中",
    "resolved": "已处理",
    "cleared": "已自动消除",
}
EVENT_ZH = {
    "raised": "新发现",
    "seen": "再次发现",
    "cleared": "未再发现，自动消除",
    "reopened": "重新打开",
    "assigned": "分派",
    "visited": "入户核查",
    "confirmed": "确认",
    "dismissed": "排除",
    "appealed": "申诉",
    "resolved": "处理完毕",
}
# review action → (event kind, the statuses it may follow)
REVIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "assign": ("assigned", NEEDS_PERSON),
    "visit": ("visited", NEEDS_PERSON),
    "confirm": ("confirmed", NEEDS_PERSON),
    "dismiss": ("dismissed", NEEDS_PERSON),
    "appeal": ("appealed", ("confirmed", "resolved")),
    "resolve": ("resolved", ("confirmed",)),
    "reopen": ("reopened", ("dismissed", "confirmed", "resolved", "cleared")),
}
CONFIRM_ACTIONS = ("stop", "reduce", "recover")
_STATUS_OF = {"raised": "open", "reopened": "open", "visited": "visited", "confirmed": "confirmed",
              "dismissed": "dismissed", "appealed": "appealed", "resolved": "resolved", "cleared": "cleared"}


def next_status(status: str | None, kind: str) -> str:
    """The status after event `kind` (status None: before the first event)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    if kind == "seen":
        return status or "open"
    if kind == "assigned":  # assigning does not undo a visit or an appeal
        return "assigned" if status in (None, "open") else status
    return _STATUS_OF[kind]


def derive_status(kinds: Iterable[str]) -> str:
    status: str | None = None
    for kind in kinds:
        status = next_status(status, kind)
    if status is None:
        raise ValueError("a flag has at least one event")
    return status


def decide(found: Mapping[str, str], existing: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str | None]]:
    """What a run does: {key: (event kind, reason)} for the findings `found` ({key: fingerprint})
    of the rules it ran, against their `existing` flags ({key: (status, fingerprint)})."""
    decisions: dict[str, tuple[str, str | None]] = {}
    for key, print_ in found.items():
        if key not in existing:
            decisions[key] = ("raised", None)
            continue
        status, before = existing[key]
        if status == "cleared":
            decisions[key] = ("reopened", "found again 再次发现")
        elif status in DECIDED and print_ != before:
            decisions[key] = ("reopened", "evidence changed 证据已变化")
        else:
            decisions[key] = ("seen", None)
    for key, (status, _) in existing.items():
        if key not in found and status in CLEARABLE:
            decisions[key] = ("cleared", "not found any more 未再发现")
    return decisions


@dataclass
class Counts:
    found: int = 0
    raised: int = 0
    reopened: int = 0
    seen: int = 0
    cleared: int = 0

    @property
    def alerts(self) -> int:
        return self.raised + self.reopened


_LATEST = ("id_number", "roll_id_number", "name", "region_code", "source", "match_method", "match_score",
           "evidence", "fingerprint", "overpayment", "as_of", "severity", "cadence", "level")


def looked_at(roll: pl.DataFrame, resolutions: pl.DataFrame | None = None) -> set[str]:
    """The people a run over `roll` (a loaded roll: its IDs in their canonical spelling already)
    looked at, as flags name them: each roll ID, and the ID it was resolved to (`resolutions`,
    engine.run's)."""
    found = [roll.get_column("id_number")]
    if resolutions is not None and resolutions.height:
        found.append(resolutions.get_column("id_number"))
    return set(pl.concat(found).drop_nulls().unique().to_list()) - {""}


def apply(session: Session, run_id: int, at: datetime, found: pl.DataFrame, rules: list[str],
          households: Iterable[str] | None = None, persons: Iterable[str] | None = None,
          partial: Iterable[str] = ()) -> Counts:
    """Apply the lifecycle for the findings `found` (engine flags with store.identity's columns)
    of `rules`; inserts and updates in `session`'s transaction, commits nothing.

    A run clears only what it looked at ("not found any more" is otherwise untrue):
    `households`, the households it looked at (a roll snapshot's, a batch's, a check's; None:
    every household with a flag); `persons`, the people it looked at (their IDs as given and as
    resolved): a person's flag is cleared only when they were among them, so that a member left
    out of a check or whose row was rejected keeps theirs; `partial`, households the run saw only
    in part (some of their rows rejected): none of their flags is cleared."""
    counts = Counts(found=found.height)
    if not rules:
        return counts
    existing_rows = session.execute(
        sa.select(Flag.id, Flag.key, Flag.status, Flag.fingerprint, Flag.household_id, Flag.person)
        .where(Flag.rule_id.in_(rules))
    ).all()
    if households is not None:
        seen_households = set(households)
        existing_rows = [r for r in existing_rows if r.household_id in seen_households]
    existing = {r.key: (r.status, r.fingerprint) for r in existing_rows}
    ids = {r.key: r.id for r in existing_rows}
    rows = {r["key"]: r for r in found.iter_rows(named=True)}
    decisions = decide({k: r["fingerprint"] for k, r in rows.items()}, existing)
    seen_persons, partly_seen = (None if persons is None else set(persons)), set(partial)
    unseen = {r.key for r in existing_rows
              if r.household_id in partly_seen or (seen_persons is not None and r.person and r.person not in seen_persons)}
    decisions = {key: decision for key, decision in decisions.items()
                 if not (decision[0] == "cleared" and key in unseen)}

    new = [
        {
            "key": key,
            "rule_id": r["rule_id"],
            "household_id": r["household_id"] or "",
            "program": r["program"] or "",
            "person": r["person"],
            "identity": json.loads(r["identity"]),
            **{c: r[c] for c in _LATEST},
            "status": "open",
            "status_at": at,
            "opened_at": at,
            "first_run_id": run_id,
            "last_run_id": run_id,
        }
        for key, r in rows.items()
        if decisions[key][0] == "raised"
    ]
    if new:
        inserted = session.execute(
            sa.insert(Flag).returning(Flag.id, Flag.key, sort_by_parameter_order=True), new
        ).all()
        ids.update({row.key: row.id for row in inserted})

    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for key, (kind, reason) in decisions.items():
        setattr(counts, kind, getattr(counts, kind) + 1)
        event: dict[str, Any] = {"flag_id": ids[key], "run_id": run_id, "kind": kind, "at": at, "by": SYSTEM,
                                 "fingerprint": None, "detail": None}
        if kind == "cleared":
            event["fingerprint"] = existing[key][1]
            event["detail"] = {"reason": reason}
            updates.append({"id": ids[key], "status": "cleared", "status_at": at})
        else:
            r = rows[key]
            event["fingerprint"] = r["fingerprint"]
            changed = key in existing and existing[key][1] != r["fingerprint"]
            if kind == "raised" or changed:
                event["detail"] = {"evidence": r["evidence"]}
            if kind == "reopened":
                event["detail"] = {"reason": reason, "evidence": r["evidence"],
                                   "previous_fingerprint": existing[key][1]}
            if kind == "seen" and changed:
                event["detail"]["evidence_changed"] = True
            if kind != "raised":
                update = {"id": ids[key], **{c: r[c] for c in _LATEST}, "last_run_id": run_id}
                if kind == "reopened":
                    update.update(status="open", status_at=at, opened_at=at)
                updates.append(update)
        events.append(event)
    if updates:
        # Grouped by the columns they set: one executemany per shape.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for update in updates:
            shapes.setdefault(tuple(sorted(update)), []).append(update)
        for batch in shapes.values():
            session.execute(sa.update(Flag), batch)
    if events:
        session.execute(sa.insert(FlagEvent), events)
    return counts


_FIELD_ZH = {"income": "核实月收入", "expenditure": "核实月支出", "amount": "金额"}


def _number(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReviewIncomplete(f"{_FIELD_ZH[name]}须为金额（元），而不是 {value!r} ({name} must be a number of yuan)") from None
    if number < 0:
        raise ReviewIncomplete(f"{_FIELD_ZH[name]}不能为负数 ({name} must not be negative)")
    return round(number, 2)


def _detail(action: str, flag: Flag, given: Mapping[str, Any]) -> dict[str, Any]:
    """The event detail of a review action, checked: what each action needs is there."""
    text = {k: str(v).strip() for k, v in given.items() if v is not None and str(v).strip()}
    if action == "assign":
        if "to" not in text:
            raise ReviewIncomplete("分派需写明核查人 (assign needs to: the caseworker the flag is given to)")
        return {"to": text["to"]}
    if action == "visit":
        detail = {k: text[k] for k in ("living", "note") if k in text}
        for name in ("income", "expenditure"):
            if (value := _number(name, given.get(name))) is not None:
                detail[name] = value
        if not detail:
            raise ReviewIncomplete("入户核查需至少填写核实月收入、核实月支出、生活状况或备注之一 "
                                   "(visit needs its findings: income, expenditure, living and/or note)")
        return detail
    if action == "confirm":
        what = text.get("action")
        if what not in CONFIRM_ACTIONS:
            raise ReviewIncomplete(f"确认需选择处理方式：停发、减发或追缴 (confirm needs an action, one of "
                                   f"{', '.join(CONFIRM_ACTIONS)})")
        detail = {"action": what, **{k: text[k] for k in ("note",) if k in text}}
        amount = _number("amount", given.get("amount"))
        if what == "recover" and amount is None:
            if flag.overpayment is None:
                raise ReviewIncomplete("追缴需填写金额：此预警没有多发金额估算 (recover needs an amount: this flag "
                                       "has no overpayment estimate)")
            amount = flag.overpayment  # the engine's estimate, recorded as what is to be recovered
        if amount is not None:
            detail["amount"] = amount
        return detail
    if action in ("dismiss", "reopen"):
        if "reason" not in text:
            raise ReviewIncomplete(f"{'排除' if action == 'dismiss' else '重新打开'}需写明理由 ({action} needs a reason)")
        return {"reason": text["reason"], **{k: text[k] for k in ("note",) if k in text}}
    detail = {k: text[k] for k in ("note", "reason") if k in text}
    if (amount := _number("amount", given.get("amount"))) is not None:
        detail["amount"] = amount
    return detail


def review(session: Session, flag_id: int, verb: str, by: str, at: datetime, **given: Any) -> FlagEvent:
    """Record a person's review `verb` (assign, visit, confirm, dismiss, appeal, resolve,
    reopen) on a flag, with its details in `given`; raises NotFound or ReviewError."""
    action = verb
    if action not in REVIEWS:
        raise ReviewIncomplete(f"未知的处理操作 {action!r} (unknown review action; one of {', '.join(REVIEWS)})")
    if not by or not by.strip():
        raise ReviewIncomplete("处理记录需写明处理人 (a review needs by: who did it)")
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise NotFound(f"没有编号为 {flag_id} 的预警 (no flag {flag_id})")
    kind, allowed = REVIEWS[action]
    if flag.status not in allowed:
        raise ReviewError(
            f"预警 {flag_id} 当前状态为“{STATUS_ZH[flag.status]}”，不能{EVENT_ZH[kind]} "
            f"(flag {flag_id} is {flag.status}: {action} applies only to flags that are {', '.join(allowed)})"
        )
    detail = _detail(action, flag, given)
    event = FlagEvent(flag_id=flag.id, run_id=None, kind=kind, at=at, by=by.strip(), fingerprint=flag.fingerprint,
                      detail=detail)
    session.add(event)
    flag.status = next_status(flag.status, kind)
    flag.status_at = at
    if kind == "assigned":
        flag.assignee = detail["to"]
    if kind in ("reopened", "appealed"):
        flag.opened_at = at
    session.flush()
    return event


def overdue_before(now: datetime, days: int) -> datetime:
    """Flags that need a person and were opened before this are overdue."""
    return now - timedelta(days=days)
