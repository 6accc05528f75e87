"""GET /rules, GET /health and GET /metrics (the Prometheus text format)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from engine.rules import CATALOGUE

from ..conftest import AS_OF, assert_error


def _metrics(api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def test_the_rule_catalogue(api):
    rules = api.get("/rules", "cw_a").json()
    assert [r["id"] for r in rules] == [r.id for r in CATALOGUE]
    deceased = next(r for r in rules if r["id"] == "deceased")
    assert deceased["cadence"] == "monthly" and deceased["level"] == "person" and deceased["label_zh"]
    assert set(deceased["sources"]) >= {"deaths"} and deceased["condition"]


def test_health_needs_no_token_and_names_the_snapshots(api):
    body = api.get("/health").json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["checker"] == "ok" and body["version"]
    assert body["snapshots"]["roll"] == AS_OF.isoformat() and len(body["snapshots"]) == 13
    assert body["uptime_seconds"] >= 0


def test_health_says_when_the_database_cannot_be_read(api, monkeypatch):
    def broken():
        raise RuntimeError("database is locked\nmore")

    monkeypatch.setattr(api.client.app.state.crosscheck.store, "read", broken)
    response = api.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["database"] == "error: database is locked"


def test_metrics_count_requests_by_route_template_and_status(api):
    flag_id = api.flag_ids(api.city.township_a)[0]
    api.get(f"/flags/{flag_id}", "cw_a")
    api.get(f"/flags/{flag_id}", "cw_b")
    before = _metrics(api)
    api.get(f"/flags/{flag_id}", "cw_a")
    api.get("/flags/999999", "cw_a")
    after = _metrics(api)
    ok = ("crosscheck_http_requests_total", (("method", "GET"), ("route", "/flags/{flag_id}"), ("status", "200")))
    missing = ("crosscheck_http_requests_total", (("method", "GET"), ("route", "/flags/{flag_id}"), ("status", "404")))
    assert after[ok] == before[ok] + 1 and after[missing] == before[missing] + 1
    assert not any(f"/flags/{flag_id}" in str(labels) for _, labels in after)  # templates, not ids


def test_metrics_count_checks_and_open_flags(api):
    before = _metrics(api)
    roll = api.city.roll
    members = api.city.members(roll["household_id"][0])
    assert api.post("/checks", "sys", json={"as_of": AS_OF.isoformat(), "members": members}).status_code == 200
    after = _metrics(api)
    assert after[("crosscheck_checks_total", ())] == before[("crosscheck_checks_total", ())] + 1
    # One engine call of this request alone (nothing else was waiting), timed.
    for name in ("crosscheck_check_together_count", "crosscheck_check_engine_seconds_count"):
        assert after[(name, ())] == before.get((name, ()), 0) + 1
    assert after[("crosscheck_check_together_sum", ())] == before.get(("crosscheck_check_together_sum", ()), 0) + 1
    assert after[("crosscheck_check_engine_seconds_sum", ())] > before.get(("crosscheck_check_engine_seconds_sum", ()), 0)
    open_flags = {labels[0][1]: value for (name, labels), value in after.items() if name == "crosscheck_open_flags"}
    assert set(open_flags) == {r.id for r in CATALOGUE} and sum(open_flags.values()) > 0
    ages = {labels[0][1] for (name, labels), _ in after.items() if name == "crosscheck_snapshot_age_days"}
    assert "hukou" in ages


def test_the_catalogue_needs_a_token(api):
    assert_error(api.get("/rules"), 401, "not_authenticated")
