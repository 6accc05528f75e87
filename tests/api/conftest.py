"""The API's tests run through HTTP (FastAPI's TestClient) against a store that holds one
synthetic city: the fixture generator's 200 households (half of them with a case, so that every
township has flags to review), written in the mixed formats bureaus deliver (a GBK CSV roll with
Chinese headers, XLSX, CSV and Parquet sources), ingested as snapshots and run once.

The store is built once per session (`template`) and copied for each test module (`api`), so
that a module's reviews, uploads and runs never change what another module sees.

Users, one of each role (`TOKENS`):
    cw_a    caseworker of township A (the township with the most flags)
    cw_b    caseworker of township B, another township of the same county
    sup     supervisor of the county (6 digits)
    aud     auditor of the whole province (IDs masked)
    sys     system of the whole province
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import API_PREFIX, create_app
from engine import loaders
from fixtures.generator import Generated, generate
from fixtures.writing import write
from store.db import Store
from store.models import Flag
from store.runs import start_run
from store.settings import Settings
from store.snapshots import ingest
from store.users import add_user

AS_OF = date(2026, 6, 30)
HOUSEHOLDS, SEED, CASE_FRACTION = 200, 23, 0.5
ROLES = {"cw_a": "caseworker", "cw_b": "caseworker", "sup": "supervisor", "aud": "auditor", "sys": "system"}
WAIT_SECONDS = 120  # a background batch or run that has not finished by then has failed


@dataclass(frozen=True)
class City:
    generated: Generated
    paths: dict[str, Path]  # fixtures.writing.write's: roll, sources, truth, policy, …
    township_a: str  # 9 digits
    township_b: str  # 9 digits, same county
    county: str  # 6 digits
    elsewhere: str  # a township with flags outside the county
    roll: pl.DataFrame  # the roll as engine.loaders reads it: codes, numbers and dates typed

    def members(self, household_id: str) -> list[dict[str, Any]]:
        """A household's roll rows as POST /checks members (IDs as written on the roll)."""
        rows = self.roll.filter(pl.col("household_id") == household_id).sort("_row")
        return [
            {"id_number": r["id_number_raw"], "name": r["name"], "program": r["program"], "region_code": r["region_code"],
             "benefit_monthly": r["benefit_monthly"], "declared_income_monthly": r["declared_income_monthly"] or 0,
             "relation": r["relation"], "enrolled_on": r["enrolled_on"].isoformat() if r["enrolled_on"] else None}
            for r in rows.iter_rows(named=True)
        ]

    def truth_rules(self, household_id: str) -> set[str]:
        truth = self.generated.truth
        return set(truth.filter(pl.col("household_id") == household_id).get_column("rule_id"))


@pytest.fixture(scope="session")
def city(tmp_path_factory: pytest.TempPathFactory) -> City:
    generated = generate(HOUSEHOLDS, seed=SEED, as_of=AS_OF, case_fraction=CASE_FRACTION)
    paths = write(generated, tmp_path_factory.mktemp("city"), formats="mixed")
    townships = (
        generated.truth.join(generated.roll.select("household_id", "region_code").unique("household_id"),
                             on="household_id")
        .group_by(pl.col("region_code").str.slice(0, 9).alias("township")).len()
        .sort(["len", "township"], descending=[True, False])
        .get_column("township").to_list()
    )
    a = townships[0]
    b = next(t for t in townships[1:] if t[:6] == a[:6])
    elsewhere = next(t for t in townships if t[:6] != a[:6])
    roll = loaders.load(paths["roll"], "roll", AS_OF).frame
    return City(generated, paths, a, b, a[:6], elsewhere, roll)


@dataclass
class Template:
    data_dir: Path
    policy: Path
    tokens: dict[str, str]
    regions: dict[str, str]


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory, city: City) -> Template:
    """A data directory with every snapshot, one user of each role and one completed run."""
    data_dir = tmp_path_factory.mktemp("template") / "data"
    regions = {"cw_a": city.township_a, "cw_b": city.township_b, "sup": city.county, "aud": "32", "sys": "32"}
    with Store.open(Settings(data_dir=data_dir, policy=city.paths["policy"])) as store:
        for path in sorted(city.paths["sources"].iterdir()):
            ingest(store, path.stem, path, AS_OF)
        ingest(store, "roll", city.paths["roll"], AS_OF)
        tokens = {name: add_user(store, name, ROLES[name], regions[name])[1] for name in ROLES}
        start_run(store, AS_OF, trigger="cli")
    return Template(data_dir, city.paths["policy"], tokens, regions)


@dataclass
class Api:
    """One app on a copy of the template store, and what tests need to talk to it."""

    client: TestClient
    store: Store  # the same database, for looking behind the API
    settings: Settings
    city: City
    tokens: dict[str, str]
    regions: dict[str, str]
    used: set[int] = field(default_factory=set)  # flags a test has already reviewed

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def request(self, method: str, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**(self.auth(user) if user else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, API_PREFIX + path, headers=headers, **kwargs)

    def get(self, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, user, **kwargs)

    def post(self, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, user, **kwargs)

    def flag_ids(self, region: str, *, status: str | None = None, where: Any = None) -> list[int]:
        """Stored flags under `region` (straight from the database), oldest first."""
        query = sa.select(Flag.id).where(Flag.region_code.startswith(region)).order_by(Flag.id)
        if status:
            query = query.where(Flag.status == status)
        if where is not None:
            query = query.where(where)
        with self.store.read() as session:
            return list(session.scalars(query))

    def fresh_flag(self, region: str, where: Any = None) -> int:
        """An open flag under `region` that no other test of the module has reviewed."""
        for flag_id in self.flag_ids(region, status="open", where=where):
            if flag_id not in self.used:
                self.used.add(flag_id)
                return flag_id
        raise AssertionError(f"the fixture city has no more open flags under {region}")

    def wait(self, path: str, user: str = "sys", done: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """GET `path` until its status is final (completed or failed)."""
        done = done or (lambda body: body["status"] in ("completed", "failed"))
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            response = self.get(path, user)
            assert response.status_code == 200, response.text
            body = response.json()
            if done(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def open_api(template: Template, city: City, directory: Path, **settings: Any) -> Iterator[Api]:
    """An app on a copy of the template's data directory (and a store on it for assertions)."""
    data_dir = directory / "data"
    shutil.copytree(template.data_dir, data_dir)
    configured = Settings(data_dir=data_dir, policy=template.policy, **settings)
    with Store.open(configured) as store, TestClient(create_app(configured)) as client:
        yield Api(client, store, configured, city, template.tokens, template.regions)


@pytest.fixture(scope="module")
def api(template: Template, city: City, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from open_api(template, city, tmp_path_factory.mktemp("api"))


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> Any:
    """The response is an error of the one shape {"error", "detail"}; returns the detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["detail"], body
    if error is not None:
        assert body["error"] == error, body
    return body["detail"]
