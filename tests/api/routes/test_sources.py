"""GET /sources and POST /sources/{key}/snapshots."""

from __future__ import annotations

import io
import zipfile
from datetime import date

import polars as pl
import pytest
import sqlalchemy as sa

from store.models import Snapshot
from store.snapshots import KEYS

from ..conftest import AS_OF, assert_error


def _upload(api, key: str, name: str, content: bytes, snapshot_date: str | None = "2026-07-31", user: str = "sys"):
    data = {"snapshot_date": snapshot_date} if snapshot_date is not None else {}
    return api.post(f"/sources/{key}/snapshots", user, files={"file": (name, content, "application/octet-stream")},
                    data=data)


def _snapshots(api) -> int:
    with api.store.read() as session:
        return session.execute(sa.select(sa.func.count(Snapshot.id))).scalar_one()


def _deaths(api) -> bytes:
    return (api.city.paths["sources"] / "deaths.csv").read_bytes()


def test_every_key_with_its_latest_snapshot(api):
    sources = {s["key"]: s for s in api.get("/sources", "cw_a").json()}
    assert list(sources) == list(KEYS)
    today = date.today()
    with api.store.read() as session:
        rows = dict(session.execute(sa.select(Snapshot.key, Snapshot.rows)).all())
    for key, source in sources.items():
        assert source["snapshot_date"] == AS_OF.isoformat() and source["snapshots"] == 1
        assert source["rows"] == rows[key] and source["zh"] and source["cadence"]
        assert source["age_days"] == (today - AS_OF).days
        assert source["state"] in ("current", "stale")


def test_a_new_snapshot_is_kept_and_the_same_file_twice_is_a_no_op(api):
    assert _upload(api, "deaths", "deaths.csv", _deaths(api)).json()["new"] is False  # the one ingested already
    content = _deaths(api) + "320312196109077508,赵怡霞,2026-03-09\n".encode()
    response = _upload(api, "deaths", "deaths.csv", content)
    assert response.status_code == 201, response.text
    first = response.json()
    assert first["new"] and first["key"] == "deaths" and first["snapshot_date"] == "2026-07-31"
    assert first["file_name"] == "deaths.csv" and first["rows"] > 0 and first["rejects"] == 0
    again = _upload(api, "deaths", "deaths.csv", content).json()
    assert again["new"] is False and again["id"] == first["id"]
    deaths = next(s for s in api.get("/sources", "sys").json() if s["key"] == "deaths")
    assert deaths["snapshot_id"] == first["id"] and deaths["snapshots"] == 2


def test_rejected_rows_are_listed_with_their_values_and_the_rest_kept(api):
    lines = _deaths(api).decode("utf-8-sig").splitlines()
    lines[2] = "320312197409265812,何贵超,昨天"  # row 3: a death date that is not a date
    response = _upload(api, "deaths", "deaths-bad.csv", ("\n".join(lines) + "\n").encode())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["rejects"] == 1 and body["rows"] == len(lines) - 2
    assert [(p["row"], p["column"], p["value"]) for p in body["problems"]] == [(3, "death_date", "昨天")]


def test_a_file_without_a_name_is_told_by_its_first_bytes(api):
    buffer = io.BytesIO()
    pl.read_parquet(api.city.paths["sources"] / "deposits.parquet").head(50).write_parquet(buffer)
    parquet = buffer.getvalue()
    response = _upload(api, "deposits", "deposits_export", parquet)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["new"] and body["file_name"] == "deposits_export.parquet" and body["rows"] == 50


def test_a_name_with_directories_is_only_a_name(api):
    response = _upload(api, "deaths", "../../escaped.csv", _deaths(api) + b"320312196109077508,x,2026-01-01\n")
    assert response.status_code == 201, response.text
    assert response.json()["file_name"] == "escaped.csv"
    assert not (api.settings.data_dir.parent / "escaped.csv").exists()


def test_without_a_date_the_snapshot_is_of_today(api):
    content = _deaths(api) + b"320312196109077508,x,2026-01-02\n"
    body = _upload(api, "deaths", "deaths.csv", content, snapshot_date=None).json()
    assert body["snapshot_date"] == date.today().isoformat()


@pytest.mark.parametrize(("description", "key", "name", "content", "status", "error"), [
    ("an unknown key", "weather", "weather.csv", b"a,b\n1,2\n", 422, "invalid_request"),
    ("an empty file", "deaths", "deaths.csv", b"", 422, "invalid_input"),
    ("a file of another kind", "deaths", "deaths.pdf", b"%PDF-1.4", 422, "invalid_input"),
    ("a table without the source's columns", "deaths", "deaths.csv", "姓名,电话\n张三,1\n".encode(), 422,
     "invalid_input"),
])
def test_a_file_that_cannot_be_used_is_refused_and_nothing_kept(api, description, key, name, content, status, error):
    before = _snapshots(api)
    detail = assert_error(_upload(api, key, name, content), status, error)
    assert _snapshots(api) == before, description
    assert str(api.settings.data_dir) not in str(detail)  # the file is named as uploaded, not by our path


def test_an_xlsx_bomb_is_refused(api):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", "<sheetData>" + " " * 5_000_000 + "</sheetData>")
    before = _snapshots(api)
    assert "XLSX" in str(assert_error(_upload(api, "vehicles", "vehicles.xlsx", buffer.getvalue()), 413, "too_large"))
    assert _snapshots(api) == before


@pytest.mark.parametrize("user", ["cw_a", "sup", "aud"])
def test_only_the_system_user_uploads_snapshots(api, user):
    before = _snapshots(api)
    assert_error(_upload(api, "deaths", "deaths.csv", _deaths(api), user=user), 403, "forbidden")
    assert _snapshots(api) == before
