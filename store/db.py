"""The Store: one SQLAlchemy engine, read and write sessions, the run lock, migrations.

    store = Store.open(settings)        # creates the data directory, applies migrations
    with store.read() as session: ...   # a consistent read
    with store.write(lock="run 7") as session: ...   # one transaction holding the run lock

SQLite (the default: `crosscheck.db` in the data directory) runs in WAL mode, so reads go on
while a run is being written. pysqlite's own transaction handling is switched off and BEGIN is
sent by us: write sessions begin with BEGIN IMMEDIATE, which takes SQLite's write lock at once
(instead of failing half-way when a read turns into a write) and waits `lock_timeout` seconds for
another writer. On PostgreSQL the run lock is a row lock on `run_lock` taken with
`SELECT … FOR UPDATE` under a `lock_timeout`. Either way a run or a review that cannot get the
lock in time fails with StoreBusy, naming the run that holds it; it never writes half.

Database errors become StoreError messages with the URL (password hidden), never tracebacks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from engine.errors import StoreBusy, StoreError

from .models import Run, RunLock, utcnow
from .settings import Settings, load_settings

__all__ = ["Store", "upgrade", "MIGRATIONS", "head_revision"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_WRITE = "crosscheck_write"  # execution option: this connection's transactions take the write lock
# Alembic's migration context is process-global: one migration at a time per process (between
# processes, the migration transaction's database lock orders them).
_MIGRATING = threading.Lock()
_MIGRATION_LOCK = 0x63726F73  # "cros": PostgreSQL advisory lock key of migrations (as in env.py)


class Store:
    """The database and data directory of one installation."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    # ---- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings | None = None, *, migrate: bool = True) -> Store:
        """Open the store of `settings` (from the environment by default); unless `migrate` is
        False, bring its schema up to date first (the first use creates it)."""
        settings = settings or load_settings()
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"无法创建数据目录 cannot create the data directory {settings.data_dir}: {error.strerror or error}"
            ) from None
        store = cls(settings, _make_engine(settings))
        if migrate:
            upgrade(store)
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def label(self) -> str:
        """The database URL without its password, for messages."""
        return make_url(self.settings.url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ---- sessions -------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; nothing it does is committed."""
        # Closing (not rolling back) ends the transaction and leaves loaded objects readable.
        with self._errors(), Session(self.engine, expire_on_commit=False, autoflush=False) as session:
            yield session

    @contextmanager
    def write(self, lock: str | None = None) -> Iterator[Session]:
        """One transaction, committed when the block ends without an exception and rolled back
        otherwise. With `lock` (who holds it, for messages), the run lock is taken first and
        held until the end: runs and reviews are serialised, so each sees the other's result."""
        with self._errors(), self.engine.connect() as connection:
            connection.execution_options(**{_WRITE: True})
            with Session(bind=connection, expire_on_commit=False) as session:
                with session.begin():
                    if lock is not None:
                        self._take_lock(session, lock)
                    yield session

    def _take_lock(self, session: Session, holder: str) -> None:
        timeout_ms = int(self.settings.lock_timeout * 1000)
        if self.dialect == "postgresql":
            # SET LOCAL: for this transaction only; 0 would mean "wait for ever" to PostgreSQL.
            session.execute(sa.text(f"SET LOCAL lock_timeout = {max(timeout_ms, 1)}"))
            session.execute(sa.select(RunLock.id).where(RunLock.id == 1).with_for_update())
            session.execute(sa.text("SET LOCAL lock_timeout = 0"))
        # On SQLite BEGIN IMMEDIATE already holds the write lock; the row says who has it.
        session.execute(sa.update(RunLock).where(RunLock.id == 1).values(holder=holder[:255], acquired_at=utcnow()))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.OperationalError as error:
            if _is_busy(error):
                raise StoreBusy(self._busy_message()) from None
            raise StoreError(f"数据库错误 database error ({self.label}): {_first_line(error)}") from None
        except sa.exc.DBAPIError as error:
            raise StoreError(f"数据库错误 database error ({self.label}): {_first_line(error)}") from None

    def _busy_message(self) -> str:
        holders = ""
        try:
            with Session(self.engine) as session:
                running = session.execute(
                    sa.select(Run.id, Run.host, Run.pid, Run.started_at).where(Run.status == "running")
                ).all()
            holders = "; ".join(
                f"run {r.id} (pid {r.pid} on {r.host}, started {r.started_at:%Y-%m-%d %H:%M:%S} UTC)" for r in running
            )
        except Exception:  # the message must not fail because the store is busy
            pass
        return (
            f"存储正忙 the store is busy: another run or review holds its lock and did not finish within "
            f"{self.settings.lock_timeout:g} s{' — ' + holders if holders else ''}. Nothing was written; "
            "try again when it has finished (CROSSCHECK_LOCK_TIMEOUT sets how long to wait)."
        )


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def _is_busy(error: sa.exc.OperationalError) -> bool:
    original = error.orig
    if getattr(original, "sqlstate", None) == "55P03":  # PostgreSQL lock_not_available
        return True
    return "database is locked" in str(original) or "database table is locked" in str(original)


def _make_engine(settings: Settings) -> Engine:
    url = settings.url
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(f"CROSSCHECK_DATABASE_URL is not a database URL: {url!r}") from None
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": settings.lock_timeout}
    elif parsed.get_backend_name() == "postgresql":
        options["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **options)
    except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
        raise StoreError(f"cannot use the database URL {parsed.render_as_string(hide_password=True)}: {error}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine, settings)
    return engine


def _sqlite_setup(engine: Engine, settings: Settings) -> None:
    busy_ms = int(settings.lock_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we send BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        write = connection.get_execution_options().get(_WRITE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# ---- migrations ---------------------------------------------------------------------------


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: Store) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with store._errors(), store.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(store: Store) -> tuple[str | None, str]:
    """Apply the migrations the store lacks; returns (revision before, revision now)."""
    with _MIGRATING:
        return _upgrade(store)


def _upgrade(store: Store) -> tuple[str | None, str]:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = head_revision()
    if current_revision(store) == head:  # the usual case, without taking the write lock
        return head, head
    config = _alembic_config()
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    with store._errors(), store.engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            # Under the write lock, so that of two processes opening a new store one migrates and
            # the other then finds it done.
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            before = MigrationContext.configure(connection).get_current_revision()
            if before == head:
                return before, head
            if before is not None and before not in known:
                raise StoreError(
                    f"数据库版本过新 the store {store.label} is at schema revision {before!r}, which this "
                    "version of crosscheck does not know: it was written by a newer crosscheck. Upgrade crosscheck."
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    return before, head
