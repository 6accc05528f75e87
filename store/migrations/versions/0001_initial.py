"""Snapshots, runs, flags with their append-only events, household reviews, the run lock.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("file_hash", sa.String(64), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("rejects", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.Integer(), nullable=False),
        sa.UniqueConstraint("key", "file_hash", name="uq_snapshots_key_file_hash"),
    )
    op.create_index("ix_snapshots_key", "snapshots", ["key"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("requested", sa.JSON(), nullable=False),
        sa.Column("policy_file", sa.String(500), nullable=True),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("found", sa.Integer(), nullable=True),
        sa.Column("raised", sa.Integer(), nullable=True),
        sa.Column("reopened", sa.Integer(), nullable=True),
        sa.Column("seen", sa.Integer(), nullable=True),
        sa.Column("cleared", sa.Integer(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_runs_status", "runs", ["status"])

    op.create_table(
        "run_inputs",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("snapshot_id", sa.Integer(), sa.ForeignKey("snapshots.id"), nullable=False),
    )

    op.create_table(
        "run_rules",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("rule_id", sa.String(64), primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("flags", sa.Integer(), nullable=True),
        sa.Column("inputs_hash", sa.String(64), nullable=True),
        sa.Column("snapshots", sa.JSON(), nullable=True),
        sa.Column("same_as_run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
    )
    op.create_index("ix_run_rules_rule_id", "run_rules", ["rule_id", "run_id"])

    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(255), nullable=False),
        sa.Column("program", sa.String(32), nullable=False),
        sa.Column("person", sa.String(64), nullable=False),
        sa.Column("identity", sa.JSON(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("cadence", sa.String(16), nullable=False),
        sa.Column("id_number", sa.String(64), nullable=True),
        sa.Column("roll_id_number", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("region_code", sa.String(16), nullable=True),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("match_method", sa.String(16), nullable=True),
        sa.Column("match_score", sa.Float(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("overpayment", sa.Float(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("assignee", sa.String(255), nullable=True),
        sa.Column("first_run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("last_run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
    )
    op.create_index("ix_flags_rule_status", "flags", ["rule_id", "status"])
    op.create_index("ix_flags_region_code", "flags", ["region_code"])
    op.create_index("ix_flags_household_id", "flags", ["household_id"])

    op.create_table(
        "flag_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("flag_id", sa.Integer(), sa.ForeignKey("flags.id"), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
    )
    op.create_index("ix_flag_events_flag_id", "flag_events", ["flag_id", "id"])
    op.create_index("ix_flag_events_run_id", "flag_events", ["run_id"])

    op.create_table(
        "household_reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("household_id", sa.String(255), nullable=False),
        sa.Column("reviewed_on", sa.Date(), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_household_reviews_household", "household_reviews", ["household_id", "reviewed_on"])

    lock = op.create_table(
        "run_lock",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("acquired_at", sa.DateTime(), nullable=True),
    )
    op.bulk_insert(lock, [{"id": 1, "holder": None, "acquired_at": None}])

    # The history of a flag is evidence of what was decided and why: the database itself refuses
    # to change or delete an event, whatever client writes to it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION flag_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'flag_events is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER flag_events_append_only BEFORE UPDATE OR DELETE ON flag_events "
            "FOR EACH ROW EXECUTE FUNCTION flag_events_append_only()"
        )
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER flag_events_no_{what.lower()} BEFORE {what} ON flag_events "
                "BEGIN SELECT RAISE(ABORT, 'flag_events is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER flag_events_append_only ON flag_events")
        op.execute("DROP FUNCTION flag_events_append_only()")
    else:
        op.execute("DROP TRIGGER flag_events_no_update")
        op.execute("DROP TRIGGER flag_events_no_delete")
    for table in ("run_lock", "household_reviews", "flag_events", "flags", "run_rules", "run_inputs", "runs",
                  "snapshots"):
        op.drop_table(table)
