"""GET /audit: the log for auditors, newest first, by user and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ..conftest import assert_error


def test_newest_first_and_paged(api):
    for _ in range(5):
        api.get("/rules", "cw_b")
    whole = api.get("/audit?user=cw_b&limit=1000", "aud").json()  # cw_b's: they do not grow as the auditor reads
    ids = [e["id"] for e in whole["items"]]
    assert ids == sorted(ids, reverse=True) and whole["total"] == len(ids) >= 5
    pages = [api.get(f"/audit?user=cw_b&limit=2&offset={o}", "aud").json()["items"] for o in range(0, len(ids), 2)]
    paged = [e["id"] for page in pages for e in page]
    assert paged == ids


def test_by_user(api):
    api.get("/sources", "cw_b")
    entries = api.get("/audit?user=cw_b&limit=1000", "aud").json()
    assert entries["total"] == len(entries["items"]) > 0
    assert {e["user_name"] for e in entries["items"]} == {"cw_b"}
    assert api.get("/audit?user=nobody", "aud").json()["total"] == 0


def test_by_time(api):
    api.get("/runs", "cw_b")
    now = datetime.now(UTC)
    recent = api.get("/audit", "aud", params={"since": (now - timedelta(minutes=5)).isoformat(), "user": "cw_b"}).json()
    assert recent["total"] > 0
    assert api.get("/audit", "aud", params={"since": (now + timedelta(hours=1)).isoformat()}).json()["total"] == 0
    assert api.get("/audit", "aud", params={"until": "2000-01-01T00:00:00"}).json()["total"] == 0
    naive = api.get("/audit", "aud", params={"since": (now - timedelta(minutes=5)).replace(tzinfo=None).isoformat(),
                                             "user": "cw_b"}).json()
    assert naive["total"] == recent["total"]  # a time without a zone is UTC


def test_only_auditors_read_it(api):
    for user in ("cw_a", "sup", "sys"):
        assert_error(api.get("/audit", user), 403, "forbidden")
