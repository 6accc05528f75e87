"""GET /flags (filters, pagination, priority order), GET /flags/{id} with its events, and the
review actions of POST /flags/{id}/events: what each role may do, and what the status allows."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from store.models import Flag, FlagEvent

from ..conftest import assert_error

SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


def _all(api, user: str, query: str = "") -> list[dict]:
    """Every page of GET /flags?query, 7 at a time."""
    items, offset = [], 0
    while True:
        page = api.get(f"/flags?limit=7&offset={offset}{'&' + query if query else ''}", user)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        offset += 7
        if offset >= body["total"]:
            assert len(items) == body["total"]
            return items


def _ids(api, where=None) -> set[int]:
    with api.store.read() as session:
        query = sa.select(Flag.id)
        if where is not None:
            query = query.where(where)
        return set(session.scalars(query))


def test_the_list_is_in_priority_order_severity_then_overpayment(api):
    items = _all(api, "sys")
    keys = [(SEVERITY_RANK[f["severity"]], -(f["overpayment"] if f["overpayment"] is not None else -1)) for f in items]
    assert keys == sorted(keys)
    high = [f for f in items if f["severity"] == "high"]
    assert any(f["overpayment"] for f in high) and any(f["overpayment"] is None for f in high)
    assert {f["severity"] for f in items} == {"high", "medium", "low"}


def test_pages_add_up_to_the_whole_list(api):
    whole = api.get("/flags?limit=1000", "sys").json()
    assert [f["id"] for f in _all(api, "sys")] == [f["id"] for f in whole["items"]]
    assert whole["total"] == len(_ids(api)) > 7
    past = api.get(f"/flags?offset={whole['total']}", "sys").json()
    assert past["items"] == [] and past["total"] == whole["total"]


@pytest.mark.parametrize(("query", "where"), [
    ("rule=deceased", Flag.rule_id == "deceased"),
    ("rule=deceased&rule=vehicle_owned", Flag.rule_id.in_(["deceased", "vehicle_owned"])),
    ("severity=medium", Flag.severity == "medium"),
    ("program=tekun", Flag.program == "tekun"),
    ("region=320302", Flag.region_code.startswith("320302")),
    ("severity=high&program=dibao", sa.and_(Flag.severity == "high", Flag.program == "dibao")),
])
def test_each_filter_selects_what_it_names(api, query, where):
    expected = _ids(api, where)
    assert expected and expected != _ids(api)  # the filter is not vacuous on the fixture
    assert {f["id"] for f in _all(api, "sys", query)} == expected


def test_since_selects_by_the_time_of_the_last_change(api):
    flag_id = _county_flag(api)
    assert api.post(f"/flags/{flag_id}/events", "sup", json={"action": "visit", "note": "入户"}).status_code == 201
    with api.store.read() as session:
        changed = session.get(Flag, flag_id).status_at
    expected = _ids(api, Flag.status_at >= changed)
    assert flag_id in expected and len(expected) < len(_ids(api))
    assert {f["id"] for f in _all(api, "sys", "since=" + quote(changed.isoformat()))} == expected
    assert api.get("/flags?since=2999-01-01", "sys").json()["total"] == 0
    assert api.get("/flags?since=2000-01-01T00:00:00", "sys").json()["total"] == len(_ids(api))


def test_household_and_overdue_filters(api):
    flag = api.get("/flags?limit=1", "sys").json()["items"][0]
    listed = _all(api, "sys", f"household={flag['household_id']}")
    assert {f["household_id"] for f in listed} == {flag["household_id"]}
    assert api.get("/flags?overdue=true", "sys").json()["total"] == 0  # all were raised today


def _batch_of(api, lines: int) -> dict:
    """The first `lines` rows of the roll uploaded as a batch, once it is finished."""
    text = api.city.paths["roll"].read_bytes().decode("gb18030").splitlines()
    part = "\r\n".join(text[:lines]).encode("gb18030")
    sent = api.post("/batches", "sys", files={"file": ("part.csv", part, "text/csv")}, data={"as_of": "2026-06-30"})
    assert sent.status_code == 202, sent.text
    batch = api.wait(f"/batches/{sent.json()['id']}")
    assert batch["status"] == "completed" and batch["run_id"], batch
    return batch


def test_run_selects_what_that_run_found(api):
    batch = _batch_of(api, 200)
    found = {f["flag_id"] for f in api.get(f"/batches/{batch['id']}/flags", "sys").json()}
    assert found and found != _ids(api)  # a few households' flags, not the list's
    assert {f["id"] for f in _all(api, "sys", f"run={batch['run_id']}")} == found
    # The roll's run still lists what it raised, though the batch has found some of it again since
    # (and moved their last_run_id on).
    assert {f["id"] for f in _all(api, "sys", "run=1")} == _ids(api, Flag.first_run_id == 1) > found
    assert _ids(api, Flag.last_run_id == batch["run_id"]) == found
    assert api.get("/flags?run=999999", "sys").json()["total"] == 0


@pytest.mark.parametrize(("query", "field"), [
    ("run=0", "run"), ("run=abc", "run"),
    ("rule=deceased&rule=no_such_rule", "rule[1]"), ("severity=urgent", "severity[0]"), ("status=closed", "status[0]"),
    ("program=pension", "program[0]"), ("region=32a", "region"), ("limit=0", "limit"), ("limit=1001", "limit"),
    ("offset=-1", "offset"), ("since=yesterday", "since"), ("since=0.5", "since"), ("severty=high", "severty"),
])
def test_a_bad_filter_is_a_422_naming_it(api, query, field):
    detail = assert_error(api.get(f"/flags?{query}", "sys"), 422, "invalid_request")
    assert [item["field"] for item in detail] == [field]


def test_one_flag_with_its_events(api):
    flag_id = api.flag_ids(api.city.township_a)[0]
    body = api.get(f"/flags/{flag_id}", "cw_a").json()
    assert body["id"] == flag_id == body["flag_id"]
    assert body["region_code"].startswith(api.city.township_a)
    assert body["rule_label_zh"] and body["status_zh"] and isinstance(body["evidence"], dict)
    events = body["events"]
    assert events[0]["kind"] == "raised" and events[0]["by"] == "system" and events[0]["run_id"] == 1
    assert isinstance(events[0]["detail"]["evidence"], dict)


def test_a_missing_flag_is_a_404(api):
    assert_error(api.get("/flags/999999", "sys"), 404, "not_found")
    assert_error(api.post("/flags/999999/events", "sup", json={"action": "visit", "note": "x"}), 404, "not_found")


# ---- review actions -----------------------------------------------------------------------


def _county_flag(api) -> int:
    """An open flag of the supervisor's county outside township A (whose few flags are kept
    for what only a caseworker's review shows)."""
    return api.fresh_flag(api.city.county, where=~Flag.region_code.startswith(api.city.township_a))


def _events(api, flag_id: int) -> list[str]:
    with api.store.read() as session:
        query = sa.select(FlagEvent.kind).where(FlagEvent.flag_id == flag_id).order_by(FlagEvent.id)
        return list(session.scalars(query))


def test_a_visit_then_a_dismissal_with_a_reason(api):
    flag_id = api.fresh_flag(api.city.township_a)
    visit = {"action": "visit", "income": 650, "expenditure": 900.5, "living": "两间平房，无车辆", "note": "入户核查"}
    response = api.post(f"/flags/{flag_id}/events", "cw_a", json=visit)
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["kind"] == "visited" and event["by"] == "cw_a" and event["kind_zh"]
    assert event["detail"] == {"income": 650.0, "expenditure": 900.5, "living": "两间平房，无车辆", "note": "入户核查"}
    response = api.post(f"/flags/{flag_id}/events", "cw_a", json={"action": "dismiss", "reason": "车辆已过户"})
    assert response.status_code == 201, response.text
    flag = api.get(f"/flags/{flag_id}", "cw_a").json()
    assert flag["status"] == "dismissed" and [e["kind"] for e in flag["events"]] == ["raised", "visited", "dismissed"]
    assert flag["events"][-1]["detail"]["reason"] == "车辆已过户"
    assert flag_id in {f["id"] for f in _all(api, "cw_a", "status=dismissed")}
    assert flag_id not in {f["id"] for f in _all(api, "cw_a", "status=open")}


def test_an_action_the_status_does_not_allow_is_a_409(api):
    flag_id = api.fresh_flag(api.city.township_a)
    assert api.post(f"/flags/{flag_id}/events", "cw_a", json={"action": "dismiss", "reason": "无误"}).status_code == 201
    for body in ({"action": "visit", "note": "again"}, {"action": "resolve"}, {"action": "appeal", "note": "x"}):
        user = "sup" if body["action"] == "resolve" else "cw_a"
        detail = assert_error(api.post(f"/flags/{flag_id}/events", user, json=body), 409, "review_not_allowed")
        assert "dismissed" in detail
    assert _events(api, flag_id) == ["raised", "dismissed"]


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "dismiss"}, "reason"),
    ({"action": "dismiss", "reason": "   "}, "reason"),
    ({"action": "reopen"}, "reason"),
    ({"action": "visit"}, "note"),
    ({"action": "assign"}, "to"),
    ({"action": "confirm"}, "confirm_action"),
    ({"action": "confirm", "confirm_action": "halt"}, "confirm_action"),
    ({"action": "close"}, "action"),
    ({"action": "visit", "income": -1}, "income"),
    ({"action": "visit", "income": "650"}, "income"),
])
def test_what_an_action_needs_is_a_422_naming_the_field(api, body, field):
    flag_id = api.flag_ids(api.city.township_a, status="open")[-1]
    detail = assert_error(api.post(f"/flags/{flag_id}/events", "cw_a", json=body), 422, "invalid_request")
    assert field in [item["field"] for item in detail]
    assert _events(api, flag_id) == ["raised"]


@pytest.mark.parametrize(("body", "caseworker"), [
    ({"action": "confirm", "confirm_action": "stop", "note": "本人已死亡，停发"}, 403),
    ({"action": "confirm", "confirm_action": "recover", "amount": 4800}, 403),
    ({"action": "confirm", "confirm_action": "reduce", "amount": 200}, 201),
])
def test_stopping_and_recovering_are_a_supervisors_decision(api, body, caseworker):
    flag_id = api.fresh_flag(api.city.township_a)
    response = api.post(f"/flags/{flag_id}/events", "cw_a", json=body)
    if caseworker == 403:
        assert "supervisor" in assert_error(response, 403, "forbidden")
        assert _events(api, flag_id) == ["raised"]
        response = api.post(f"/flags/{flag_id}/events", "sup", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "confirmed" and response.json()["detail"]["action"] == body["confirm_action"]
    assert api.get(f"/flags/{flag_id}", "sup").json()["status"] == "confirmed"


def test_a_recovery_without_an_amount_or_estimate_is_the_inputs_fault_not_the_status(api):
    flag_id = api.fresh_flag(api.city.county, where=Flag.overpayment.is_(None))
    body = {"action": "confirm", "confirm_action": "recover"}
    detail = assert_error(api.post(f"/flags/{flag_id}/events", "sup", json=body), 422, "invalid_review")
    assert "追缴需填写金额" in detail and "--" not in detail
    assert _events(api, flag_id) == ["raised"]


def test_resolving_is_a_supervisors_and_appeals_reopen_it(api):
    flag_id = api.fresh_flag(api.city.township_a)  # the caseworker's own flag: the role refuses, not the scope
    assert api.post(f"/flags/{flag_id}/events", "sup", json={"action": "confirm", "confirm_action": "stop"}).status_code == 201
    assert_error(api.post(f"/flags/{flag_id}/events", "cw_a", json={"action": "resolve", "note": "已停发"}), 403)
    response = api.post(f"/flags/{flag_id}/events", "sup", json={"action": "resolve", "note": "已停发", "amount": 0})
    assert response.status_code == 201 and response.json()["kind"] == "resolved"
    assert api.post(f"/flags/{flag_id}/events", "cw_a", json={"action": "appeal", "note": "家属申诉"}).status_code == 201
    assert api.get(f"/flags/{flag_id}", "cw_a").json()["status"] == "appealed"
    assert _events(api, flag_id) == ["raised", "confirmed", "resolved", "appealed"]


OVERRULING = [  # {description, decided: the supervisor's events first, action: the caseworker's}
    {"description": "reopening a stop", "decided": [{"action": "confirm", "confirm_action": "stop"}],
     "action": {"action": "reopen", "reason": "再看看"}},
    {"description": "reopening a resolution", "decided": [{"action": "confirm", "confirm_action": "recover",
                                                           "amount": 100}, {"action": "resolve", "amount": 100}],
     "action": {"action": "reopen", "reason": "再看看"}},
    {"description": "dismissing an appeal's flag",
     "decided": [{"action": "confirm", "confirm_action": "stop"}, {"action": "appeal", "note": "家属申诉"}],
     "action": {"action": "dismiss", "reason": "申诉成立"}},
    {"description": "confirming an appeal's flag",
     "decided": [{"action": "confirm", "confirm_action": "stop"}, {"action": "appeal", "note": "家属申诉"}],
     "action": {"action": "confirm", "confirm_action": "reduce", "amount": 10}},
]


@pytest.mark.parametrize("case", OVERRULING, ids=[c["description"] for c in OVERRULING])
def test_a_caseworker_cannot_undo_or_overrule_a_supervisors_decision(api, case):
    flag_id = api.fresh_flag(api.city.township_b)  # township A's few are kept for others
    for body in case["decided"]:
        assert api.post(f"/flags/{flag_id}/events", "sup", json=body).status_code == 201
    before = _events(api, flag_id)
    assert "supervisor" in assert_error(api.post(f"/flags/{flag_id}/events", "cw_b", json=case["action"]), 403)
    assert _events(api, flag_id) == before
    assert api.post(f"/flags/{flag_id}/events", "sup", json=case["action"]).status_code == 201


def test_a_caseworker_reopens_what_a_caseworker_decided(api):
    flag_id = api.fresh_flag(api.city.township_b)  # township A's few are kept for others
    assert api.post(f"/flags/{flag_id}/events", "cw_b", json={"action": "dismiss", "reason": "无误"}).status_code == 201
    assert api.post(f"/flags/{flag_id}/events", "cw_b", json={"action": "reopen", "reason": "新线索"}).status_code == 201
    assert api.get(f"/flags/{flag_id}", "cw_b").json()["status"] == "open"


def test_assigning_sets_the_assignee(api):
    flag_id = _county_flag(api)
    assert api.post(f"/flags/{flag_id}/events", "sup", json={"action": "assign", "to": "王芳"}).status_code == 201
    flag = api.get(f"/flags/{flag_id}", "sup").json()
    assert flag["status"] == "assigned" and flag["assignee"] == "王芳"
    assert flag_id in {f["id"] for f in _all(api, "sup", "status=assigned")}


def test_status_at_moves_with_each_review(api):
    flag_id = _county_flag(api)
    before = datetime.fromisoformat(api.get(f"/flags/{flag_id}", "sup").json()["status_at"])
    assert api.post(f"/flags/{flag_id}/events", "sup", json={"action": "visit", "note": "入户"}).status_code == 201
    after = datetime.fromisoformat(api.get(f"/flags/{flag_id}", "sup").json()["status_at"])
    assert after > before and after.tzinfo is not None and after <= datetime.now(UTC)
