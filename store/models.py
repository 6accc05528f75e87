"""The store's tables. Their schema is owned by the Alembic migrations (store/migrations); these
classes describe it for queries, and a test keeps the two identical.

    snapshots         one validated source file held as Parquet (key, snapshot date, hash, rows)
    runs              one run: as-of, trigger, status, timings, counts of the lifecycle
    run_inputs        the snapshot of each input a run loaded
    run_rules         per rule of a run: ran / unchanged / skipped, why, flags, inputs hash
    flags             one finding with a stable key; the latest evidence and a cached status
    flag_events       the append-only history of a flag (a trigger refuses UPDATE and DELETE)
    household_reviews the dated re-reviews of a household (动态管理)
    run_lock          one row; a run or a review holds it for the length of its transaction
    users             who may use the API: role, region prefix, SHA-256 of the token (0002)
    audit_log         append-only: who read or changed what, when, from where (0002)
    batches           an uploaded roll file checked in the background, its progress (0002)

Times are stored as naive UTC and read back as aware UTC (UtcDateTime), the same on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "UtcDateTime",
    "Snapshot",
    "Run",
    "RunInput",
    "RunRule",
    "Flag",
    "FlagEvent",
    "HouseholdReview",
    "RunLock",
    "User",
    "AuditEntry",
    "Batch",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive UTC in the database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: use an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Snapshot(Base):
    __tablename__ = "snapshots"
    __table_args__ = (sa.UniqueConstraint("key", "file_hash", name="uq_snapshots_key_file_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(32), index=True)
    snapshot_date: Mapped[date] = mapped_column(sa.Date)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    file_name: Mapped[str] = mapped_column(sa.String(255))
    file_hash: Mapped[str] = mapped_column(sa.String(64))
    path: Mapped[str] = mapped_column(sa.String(500))  # Parquet, relative to the data directory
    rows: Mapped[int] = mapped_column(sa.Integer)
    rejects: Mapped[int] = mapped_column(sa.Integer)
    warnings: Mapped[int] = mapped_column(sa.Integer)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(sa.String(16))  # cli, schedule, upload, api
    status: Mapped[str] = mapped_column(sa.String(16), index=True)  # running, completed, failed, abandoned
    as_of: Mapped[date] = mapped_column(sa.Date)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int] = mapped_column(sa.Integer)
    requested: Mapped[Any] = mapped_column(sa.JSON)  # {"rules": [...], "cadences": [...]} as asked
    policy_file: Mapped[str | None] = mapped_column(sa.String(500))
    policy_hash: Mapped[str] = mapped_column(sa.String(64))
    found: Mapped[int | None] = mapped_column(sa.Integer)  # findings of the rules applied
    raised: Mapped[int | None] = mapped_column(sa.Integer)
    reopened: Mapped[int | None] = mapped_column(sa.Integer)
    seen: Mapped[int | None] = mapped_column(sa.Integer)
    cleared: Mapped[int | None] = mapped_column(sa.Integer)
    timings: Mapped[Any | None] = mapped_column(sa.JSON)  # seconds: load, rules, store, total
    error: Mapped[str | None] = mapped_column(sa.Text)


class RunInput(Base):
    __tablename__ = "run_inputs"

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(sa.ForeignKey("snapshots.id"))


class RunRule(Base):
    __tablename__ = "run_rules"
    __table_args__ = (sa.Index("ix_run_rules_rule_id", "rule_id", "run_id"),)

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(sa.String(16))  # ran, unchanged, skipped
    reason: Mapped[str | None] = mapped_column(sa.Text)
    flags: Mapped[int | None] = mapped_column(sa.Integer)
    inputs_hash: Mapped[str | None] = mapped_column(sa.String(64))
    snapshots: Mapped[Any | None] = mapped_column(sa.JSON)  # {input key: snapshot id}
    same_as_run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))  # unchanged: whose flags


class Flag(Base):
    __tablename__ = "flags"
    __table_args__ = (
        sa.Index("ix_flags_rule_status", "rule_id", "status"),
        sa.Index("ix_flags_region_code", "region_code"),
        sa.Index("ix_flags_household_id", "household_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    rule_id: Mapped[str] = mapped_column(sa.String(64))
    household_id: Mapped[str] = mapped_column(sa.String(255))
    program: Mapped[str] = mapped_column(sa.String(32))
    person: Mapped[str] = mapped_column(sa.String(64))  # id_number for person rules, '' for household rules
    identity: Mapped[Any] = mapped_column(sa.JSON)  # identifying evidence values (plates, certificates…)
    level: Mapped[str] = mapped_column(sa.String(16))
    severity: Mapped[str] = mapped_column(sa.String(16))
    cadence: Mapped[str] = mapped_column(sa.String(16))
    # the latest finding, as the engine wrote it
    id_number: Mapped[str | None] = mapped_column(sa.String(64))
    roll_id_number: Mapped[str | None] = mapped_column(sa.String(64))
    name: Mapped[str | None] = mapped_column(sa.String(255))
    region_code: Mapped[str | None] = mapped_column(sa.String(16))
    source: Mapped[str | None] = mapped_column(sa.String(255))
    match_method: Mapped[str | None] = mapped_column(sa.String(16))
    match_score: Mapped[float | None] = mapped_column(sa.Float)
    evidence: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    overpayment: Mapped[float | None] = mapped_column(sa.Float)
    as_of: Mapped[date] = mapped_column(sa.Date)
    # caches of what the events say (store.lifecycle keeps them in step, a test checks it)
    status: Mapped[str] = mapped_column(sa.String(16))
    status_at: Mapped[datetime] = mapped_column(UtcDateTime)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)  # last raised / reopened / appealed
    assignee: Mapped[str | None] = mapped_column(sa.String(255))
    first_run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    last_run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))  # last run that found it


class FlagEvent(Base):
    __tablename__ = "flag_events"
    __table_args__ = (
        sa.Index("ix_flag_events_flag_id", "flag_id", "id"),
        sa.Index("ix_flag_events_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flag_id: Mapped[int] = mapped_column(sa.ForeignKey("flags.id"))
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))  # system events only
    kind: Mapped[str] = mapped_column(sa.String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    by: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str | None] = mapped_column(sa.String(64))  # the evidence the event is about
    detail: Mapped[Any | None] = mapped_column(sa.JSON)


class HouseholdReview(Base):
    __tablename__ = "household_reviews"
    __table_args__ = (sa.Index("ix_household_reviews_household", "household_id", "reviewed_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[str] = mapped_column(sa.String(255))
    reviewed_on: Mapped[date] = mapped_column(sa.Date)
    by: Mapped[str] = mapped_column(sa.String(255))
    note: Mapped[str | None] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RunLock(Base):
    __tablename__ = "run_lock"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder: Mapped[str | None] = mapped_column(sa.String(255))
    acquired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_users_name"),
                      sa.UniqueConstraint("token_hash", name="uq_users_token_hash"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))  # caseworker, supervisor, auditor, system
    region: Mapped[str] = mapped_column(sa.String(16))  # region_code prefix the user may see
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_at", "at"), sa.Index("ix_audit_log_user_name", "user_name", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    user_name: Mapped[str | None] = mapped_column(sa.String(255))
    role: Mapped[str | None] = mapped_column(sa.String(16))
    address: Mapped[str | None] = mapped_column(sa.String(64))
    method: Mapped[str] = mapped_column(sa.String(8))
    path: Mapped[str] = mapped_column(sa.String(1000))  # with the query string: what was asked for
    action: Mapped[str] = mapped_column(sa.String(8))  # read, write, denied
    status_code: Mapped[int] = mapped_column(sa.Integer)
    detail: Mapped[Any | None] = mapped_column(sa.JSON)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (sa.Index("ix_batches_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    by: Mapped[str] = mapped_column(sa.String(255))
    region: Mapped[str] = mapped_column(sa.String(16))  # the uploader's region: rows outside it are refused
    file_name: Mapped[str] = mapped_column(sa.String(255))
    file_hash: Mapped[str] = mapped_column(sa.String(64))
    path: Mapped[str] = mapped_column(sa.String(500))  # the upload, relative to the data directory
    as_of: Mapped[date] = mapped_column(sa.Date)
    status: Mapped[str] = mapped_column(sa.String(16))  # queued, validating, running, completed, failed
    step: Mapped[str | None] = mapped_column(sa.String(255))
    progress: Mapped[float] = mapped_column(sa.Float)  # 0..1
    rows: Mapped[int | None] = mapped_column(sa.Integer)
    households: Mapped[int | None] = mapped_column(sa.Integer)
    rejects: Mapped[int | None] = mapped_column(sa.Integer)
    flags: Mapped[int | None] = mapped_column(sa.Integer)
    problems: Mapped[Any | None] = mapped_column(sa.JSON)  # [{file,row,column,value,message}]
    warnings: Mapped[Any | None] = mapped_column(sa.JSON)  # the same, of rows kept or passed over
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))
    error: Mapped[str | None] = mapped_column(sa.Text)
