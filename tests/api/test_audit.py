"""The audit middleware (api.audit): every request that names a user, read or write, allowed or
refused, is recorded with who, when, from which address, what (method, path and query) and the
answer's status; requests without a user (health, metrics) are not. The log is append-only."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.models import AuditEntry

from .conftest import assert_error


def _log(api, **query) -> list[dict]:
    response = api.get("/audit", "aud", params={"limit": 1000, **query})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _find(entries: list[dict], method: str, path: str) -> dict:
    found = [e for e in entries if e["method"] == method and e["path"] == "/api/v1" + path]
    assert len(found) == 1, (method, path, [e["path"] for e in entries[:20]])
    return found[0]


def test_reads_and_writes_are_recorded_with_who_where_what_and_the_answer(api):
    flag_id = api.fresh_flag(api.city.township_a)
    query = f"/flags?severity=high&region={api.city.township_a}"
    assert api.get(query, "cw_a").status_code == 200
    assert api.post(f"/flags/{flag_id}/events", "cw_a", json={"action": "visit", "note": "入户"}).status_code == 201
    entries = _log(api, user="cw_a")
    read = _find(entries, "GET", query)
    assert read["user_name"] == "cw_a" and read["role"] == "caseworker" and read["action"] == "read"
    assert read["status_code"] == 200 and read["address"] == "testclient" and read["at"]
    assert read["detail"]["route"] == "/flags"
    write = _find(entries, "POST", f"/flags/{flag_id}/events")
    assert write["action"] == "write" and write["status_code"] == 201 and write["id"] > read["id"]


def test_refusals_are_recorded_as_denied(api):
    assert_error(api.get("/audit", "sup"), 403)
    assert_error(api.get("/flags", headers={"Authorization": "Bearer guessed-token"}), 401)
    entries = _log(api)
    refused = _find(entries, "GET", "/audit")
    assert refused["user_name"] == "sup" and refused["action"] == "denied" and refused["status_code"] == 403
    unknown = [e for e in entries if e["status_code"] == 401 and e["path"] == "/api/v1/flags"]
    assert unknown and unknown[0]["user_name"] is None and unknown[0]["action"] == "denied"


def test_a_read_outside_the_region_is_recorded_as_answered(api):
    flag_b = api.flag_ids(api.city.township_b)[0]
    assert_error(api.get(f"/flags/{flag_b}", "cw_a"), 404)
    entry = _find(_log(api, user="cw_a"), "GET", f"/flags/{flag_b}")
    assert entry["status_code"] == 404 and entry["action"] == "read"


def test_requests_without_a_user_are_not_personal_data_access(api):
    api.get("/health")
    api.get("/metrics")
    assert not [e for e in _log(api) if e["path"] in ("/api/v1/health", "/api/v1/metrics")]


def test_the_database_refuses_to_change_or_delete_an_entry(api):
    _log(api)  # flushed: there are entries
    with api.store.engine.connect() as connection:
        first = connection.execute(sa.select(sa.func.min(AuditEntry.id))).scalar_one()
        assert first is not None
    for statement in (sa.update(AuditEntry).where(AuditEntry.id == first).values(user_name="nobody"),
                      sa.delete(AuditEntry).where(AuditEntry.id == first)):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), api.store.engine.begin() as connection:
            connection.execute(statement)
    with api.store.read() as session:
        assert session.get(AuditEntry, first).user_name is not None
