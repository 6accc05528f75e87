"""GET /runs, GET /runs/{id}, POST /runs: start a run of chosen rules or cadences."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.models import Flag

from ..conftest import AS_OF, assert_error


def _flags_in(api, region: str) -> int:
    with api.store.read() as session:
        return session.execute(sa.select(sa.func.count(Flag.id)).where(Flag.region_code.startswith(region))).scalar_one()


def test_the_runs_newest_first_with_their_counts(api):
    runs = api.get("/runs", "sys").json()
    assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
    first = runs[-1]
    assert first["id"] == 1 and first["trigger"] == "cli" and first["status"] == "completed"
    assert first["found"] == first["raised"] == _flags_in(api, "") > 0
    assert first["as_of"] == AS_OF.isoformat()


def test_one_run_with_its_inputs_and_rules(api):
    run = api.get("/runs/1", "sys").json()
    assert run["id"] == 1 and set(run["inputs"]) >= {"hukou", "deaths", "vehicles"}
    assert {r["rule_id"] for r in run["rules"]} and all(r["outcome"] == "ran" for r in run["rules"])
    assert sum(r["flags"] for r in run["rules"]) == run["found"]
    assert run["timings"]["total"] > 0


def test_a_missing_run_is_a_404(api):
    assert_error(api.get("/runs/999999", "sys"), 404, "not_found")


@pytest.mark.parametrize("user", ["cw_a", "cw_b", "sup"])
def test_counts_are_of_the_flags_within_your_region(api, user):
    """A caseworker cannot count another township's flags through a run's counts."""
    region = api.regions[user]
    run = api.get("/runs/1", user).json()
    assert run["found"] == run["raised"] == _flags_in(api, region) < _flags_in(api, "")
    assert sum(r["flags"] for r in run["rules"]) == run["found"]
    assert next(r for r in api.get("/runs", user).json() if r["id"] == 1)["found"] == run["found"]


def test_starting_a_run_answers_202_with_its_id_and_it_completes(api):
    response = api.post("/runs", "sys", json={"as_of": AS_OF.isoformat(), "cadences": ["monthly"]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/runs/{body['id']}"
    assert body["trigger"] == "api" and body["status"] in ("running", "completed")
    run = api.wait(f"/runs/{body['id']}")
    assert run["status"] == "completed", run["error"]
    monthly = {r["rule_id"] for r in run["rules"]}
    assert "deceased" in monthly and "vehicle_owned" not in monthly
    # the same inputs as run 1: nothing changes
    assert {r["outcome"] for r in run["rules"]} == {"unchanged"} and run["raised"] == 0


def test_a_supervisor_may_start_a_run_of_chosen_rules(api):
    response = api.post("/runs", "sup", json={"rules": ["deceased", "vehicle_owned"], "as_of": "2026-07-31"})
    assert response.status_code == 202, response.text
    run = api.wait(f"/runs/{response.json()['id']}")
    assert run["status"] == "completed" and sorted(r["rule_id"] for r in run["rules"]) == ["deceased", "vehicle_owned"]
    assert {r["outcome"] for r in run["rules"]} == {"ran"}  # another as-of date: run again


@pytest.mark.parametrize(("body", "field"), [
    ({"rules": ["no_such_rule"]}, "rules[0]"),
    ({"cadences": ["weekly"]}, "cadences[0]"),
    ({"rules": []}, "rules"),
    ({"rules": ["deceased"], "cadences": ["annual"]}, "body"),
    ({"as_of": "30/06/2026"}, "as_of"),
    ({"rulez": ["deceased"]}, "rulez"),
])
def test_a_bad_selection_is_refused_at_once(api, body, field):
    before = len(api.get("/runs?limit=500", "sys").json())
    detail = assert_error(api.post("/runs", "sys", json=body), 422, "invalid_request")
    assert [item["field"] for item in detail] == [field]
    assert len(api.get("/runs?limit=500", "sys").json()) == before
