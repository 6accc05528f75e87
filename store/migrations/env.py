"""Alembic environment. Always run through store.db.upgrade (`crosscheck db upgrade`, or the first
use of a store), which hands over a connection already inside a transaction that holds the
store's write lock (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL): two processes
opening a new store at once migrate it once. There is no alembic.ini.
"""

from __future__ import annotations

from alembic import context

from store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through store.db.upgrade (`crosscheck db upgrade`)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
