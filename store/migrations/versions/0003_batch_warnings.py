"""A batch's warnings: rows kept with a warning (an ID Excel destroyed), rows passed over (a 合计 row).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("warnings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:  # SQLite rebuilds the table to drop a column
        batch.drop_column("warnings")
