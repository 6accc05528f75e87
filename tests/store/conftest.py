"""The store's tests run against SQLite by default, and against PostgreSQL when
CROSSCHECK_TEST_DATABASE_URL is set (`.ci/run` starts a server and runs them again so): every
test gets its own schema there, dropped afterwards, so tests never see each other's rows.

`city` is one synthetic city (fixtures.generator, 200 households, clean spellings) whose frames
tests change and deliver as new snapshots, the way departments would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from fixtures.generator import Generated, generate
from store import snapshots
from store.db import Store
from store.settings import Settings

PG_URL = os.environ.get("CROSSCHECK_TEST_DATABASE_URL")
BACKEND = "postgresql" if PG_URL else "sqlite"
AS_OF = date(2026, 6, 30)


def pg_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@pytest.fixture
def database_url() -> Iterator[str | None]:
    """None (SQLite in the data directory) or a PostgreSQL URL whose search_path is a fresh schema."""
    if PG_URL is None:
        yield None
        return
    base = pg_url(PG_URL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(scope="session")
def city() -> Generated:
    return generate(200, seed=11, dirty=False)


@pytest.fixture
def policy_file(tmp_path: Path, city: Generated) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(city.policy_toml, encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, policy_file: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, policy=policy_file, lock_timeout=10)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store.open(settings) as opened:
        yield opened


def env_for(settings: Settings, **more: str) -> dict[str, str]:
    """The environment of a subprocess that uses the same store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSCHECK_")}
    env.update(CROSSCHECK_DATA_DIR=str(settings.data_dir), CROSSCHECK_LOCK_TIMEOUT=str(settings.lock_timeout))
    if settings.database_url:
        env["CROSSCHECK_DATABASE_URL"] = settings.database_url
    if settings.policy:
        env["CROSSCHECK_POLICY"] = str(settings.policy)
    env.update(more)
    return env


class Deliveries:
    """Writes frames as the files a department would send and ingests them."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.store = store
        self.directory = directory
        self.count = 0

    def __call__(self, key: str, frame: pl.DataFrame, snapshot_date: date = AS_OF) -> snapshots.Ingested:
        self.count += 1
        folder = self.directory / f"delivery-{self.count}"
        folder.mkdir(parents=True)
        path = folder / f"{key}.parquet"
        frame.write_parquet(path)
        return snapshots.ingest(self.store, key, path, snapshot_date)

    def all(self, city: Generated, snapshot_date: date = AS_OF, skip: tuple[str, ...] = ()) -> None:
        self("roll", city.roll, snapshot_date)
        for key, frame in city.sources.items():
            if key not in skip:
                self(key, frame, snapshot_date)


@pytest.fixture
def deliver(store: Store, tmp_path: Path) -> Deliveries:
    return Deliveries(store, tmp_path / "deliveries")


def dump(store: Store, *, skip_runs: set[int] = frozenset()) -> dict[str, list[tuple]]:  # type: ignore[assignment]
    """Every row of every table (but the run lock's bookkeeping and the `runs` rows in
    `skip_runs`), in a stable order."""
    from store.models import Base

    out: dict[str, list[tuple]] = {}
    with store.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name == "run_lock":
                continue
            rows = connection.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            if table.name == "runs":
                rows = [r for r in rows if r.id not in skip_runs]
            out[table.name] = [tuple(r) for r in rows]
    return out
