"""Settings, the database, migrations and the run lock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.errors import StoreBusy, StoreError
from store.db import Store, current_revision, head_revision, upgrade
from store.models import Base, RunLock
from store.settings import Settings, load_settings

from .conftest import BACKEND, env_for

# ---- settings -------------------------------------------------------------------------------


def test_flags_override_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CROSSCHECK_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("CROSSCHECK_OVERDUE_DAYS", "45")
    settings = load_settings(data_dir=tmp_path / "from-flag", database_url=None)
    assert settings.data_dir == tmp_path / "from-flag" and settings.overdue_days == 45
    assert settings.url == f"sqlite:///{(tmp_path / 'from-flag' / 'crosscheck.db').resolve()}"


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("postgresql://u:p@db/crosscheck", "postgresql+psycopg://u:p@db/crosscheck"),
        ("postgres://u@db/x", "postgresql+psycopg://u@db/x"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("sqlite:////srv/cc.db", "sqlite:////srv/cc.db"),
    ],
)
def test_database_urls(given, url):
    assert Settings(database_url=given).url == url


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [("CROSSCHECK_OVERDUE_DAYS", "soon", "CROSSCHECK_OVERDUE_DAYS"),
     ("CROSSCHECK_DAY_MONTHLY", "31", "CROSSCHECK_DAY_MONTHLY"),
     ("CROSSCHECK_SCHEDULER_TIME", "25:00", "CROSSCHECK_SCHEDULER_TIME")],
)
def test_a_bad_setting_names_its_variable(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(StoreError, match=named):
        load_settings()


# ---- database -------------------------------------------------------------------------------


def test_migrations_create_exactly_the_models(store):
    assert current_revision(store) == head_revision()
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                Base.metadata) == []
    assert upgrade(store) == (head_revision(), head_revision())  # a second time: nothing to do


def test_opening_a_new_store_from_three_processes_at_once_migrates_once(settings):
    processes = [subprocess.Popen([sys.executable, "-m", "engine", "db", "upgrade"], env=env_for(settings),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    assert sum("upgraded empty" in out for _, out, _ in results) == 1
    with Store.open(settings) as store, store.read() as session:
        assert session.scalars(sa.select(RunLock.id)).all() == [1]


def test_threads_opening_one_store_at_once(settings):
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Store.open(settings).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite only")
def test_sqlite_is_in_wal_mode_in_the_data_directory(store):
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (store.settings.data_dir / "crosscheck.db").exists()


def test_a_store_written_by_a_newer_version_is_refused(store):
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer crosscheck"):
        upgrade(store)


def test_an_unreachable_database_is_a_clear_error(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="database error") as error:
        Store.open(settings)
    assert "127.0.0.1" in str(error.value) and "Traceback" not in str(error.value)


def test_the_run_lock_is_exclusive_and_times_out_clearly(settings):
    settings = settings.model_copy(update={"lock_timeout": 0.5})
    with Store.open(settings) as store:
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with store.write(lock="the first run"):
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        started = time.monotonic()
        with pytest.raises(StoreBusy, match="the store is busy"):
            with store.write(lock="the second run"):
                pass
        assert time.monotonic() - started < 5
        release.set()
        holder.join()
        with store.write(lock="the third run") as session:  # free again
            assert session.get(RunLock, 1).holder == "the third run"
