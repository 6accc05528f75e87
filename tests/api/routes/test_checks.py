"""POST /checks: one household checked at once against the latest snapshots."""

from __future__ import annotations

import json

import polars as pl
import pytest
import sqlalchemy as sa

from schemas import PROGRAMS
from store.models import Flag, Run

from ..conftest import AS_OF, assert_error


def _counts(api) -> tuple[int, int]:
    with api.store.read() as session:
        return (session.execute(sa.select(sa.func.count(Flag.id))).scalar_one(),
                session.execute(sa.select(sa.func.count(Run.id))).scalar_one())


def _body(api, household_id: str, **more):
    return {"household_id": household_id, "as_of": AS_OF.isoformat(), "members": api.city.members(household_id), **more}


def _households(api, region: str) -> list[str]:
    roll = api.city.roll.filter(pl.col("region_code").str.starts_with(region))
    return roll.get_column("household_id").unique().sort().to_list()


def test_the_flags_of_each_household_of_a_township_are_its_ground_truth(api):
    """Every household of township A, checked one by one as an application would be: the rules
    found are exactly those the generator put there (and nothing for the clean ones)."""
    households = _households(api, api.city.township_a)
    assert any(api.city.truth_rules(h) for h in households)
    for household in households:
        response = api.post("/checks", "cw_a", json=_body(api, household))
        assert response.status_code == 200, response.text
        body = response.json()
        assert {f["rule_id"] for f in body["flags"]} == api.city.truth_rules(household), household
        assert body["household_id"] == household and body["as_of"] == AS_OF.isoformat()
        assert body["run_id"] is None and all(f["flag_id"] is None for f in body["flags"])


def test_the_answer_says_what_was_read(api):
    household = next(h for h in _households(api, api.city.township_a) if api.city.truth_rules(h))
    body = api.post("/checks", "sys", json=_body(api, household)).json()
    assert body["snapshots"]["hukou"] == AS_OF.isoformat() and "roll" in body["snapshots"]
    assert set(body["ran"]) >= api.city.truth_rules(household)
    flag = body["flags"][0]
    assert flag["household_id"] == household and flag["as_of"] == AS_OF.isoformat()
    assert flag["rule_label_zh"] and flag["severity"] in ("high", "medium", "low")
    assert isinstance(flag["evidence"], dict)  # JSON, not JSON text


def test_nothing_is_stored_unless_asked(api):
    household = next(h for h in _households(api, api.city.township_b) if api.city.truth_rules(h))
    before = _counts(api)
    body = {**_body(api, household), "household_id": "APP-2026-0001"}
    response = api.post("/checks", "sys", json=body)
    assert response.status_code == 200 and response.json()["flags"]
    assert _counts(api) == before


def test_record_stores_the_findings_as_flags_of_an_api_run(api):
    household = next(h for h in _households(api, api.city.township_b) if api.city.truth_rules(h))
    body = {**_body(api, household), "household_id": "APP-2026-0002", "record": True}
    response = api.post("/checks", "sys", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["run_id"] is not None and answer["flags"]
    assert all(f["flag_id"] is not None for f in answer["flags"])
    run = api.get(f"/runs/{answer['run_id']}", "sys").json()
    assert run["trigger"] == "api" and run["status"] == "completed" and run["found"] == len(answer["flags"])
    stored = api.get(f"/flags/{answer['flags'][0]['flag_id']}", "sys").json()
    assert stored["household_id"] == "APP-2026-0002" and stored["status"] == "open"
    assert [e["kind"] for e in stored["events"]] == ["raised"]


def test_a_recorded_check_of_some_members_clears_nothing_of_the_others(api):
    """Only the members sent were checked: another member's flag is not "not found any more"."""
    from engine.rules import RULES

    # Sent again under an application's own id, every member is also enrolled twice: other rules.
    twice = ("duplicate_enrollment", "program_conflict")

    def person_flagged(household: str) -> bool:
        rules = api.city.truth_rules(household) - set(twice)
        return len(api.city.members(household)) > 1 and any(RULES[r].level == "person" for r in rules)

    household = next(h for h in _households(api, api.city.township_b) if person_flagged(h))
    body = {**_body(api, household), "household_id": "APP-2026-0003", "record": True}
    answer = api.post("/checks", "sys", json=body).json()
    flagged = next(f for f in answer["flags"] if f["level"] == "person" and f["rule_id"] not in twice)
    others = [m for m in body["members"] if m["id_number"] != flagged["roll_id_number"]]
    assert others and len(others) < len(body["members"])
    again = api.post("/checks", "sys", json={**body, "members": others})
    assert again.status_code == 200, again.text
    assert api.get(f"/flags/{flagged['flag_id']}", "sys").json()["status"] == "open"


def test_rules_and_cadences_narrow_the_check(api):
    household = next(h for h in _households(api, api.city.county) if "deceased" in api.city.truth_rules(h))
    body = api.post("/checks", "sys", json=_body(api, household, rules=["deceased"])).json()
    assert body["ran"] == ["deceased"] and {f["rule_id"] for f in body["flags"]} == {"deceased"}
    body = api.post("/checks", "sys", json=_body(api, household, cadences=["annual"])).json()
    assert "deceased" not in body["ran"] and "assets_over_limit" in body["ran"]


@pytest.mark.parametrize(("description", "change", "field"), [
    ("a program that does not exist", {"program": "pension"}, "members[0].program"),
    ("a negative benefit", {"benefit_monthly": -1}, "members[0].benefit_monthly"),
    ("a region code of letters", {"region_code": "32AB"}, "members[0].region_code"),
    # Not "outside your region": the code is refused as a code, as a roll file's would be.
    ("a region code of full-width digits", {"region_code": "３２０３０３００１"}, "members[0].region_code"),
    ("a date that is not one", {"enrolled_on": "2024-02-30"}, "members[0].enrolled_on"),
    ("no name", {"name": ""}, "members[0].name"),
])
def test_an_invalid_member_field_is_named(api, description, change, field):
    members = api.city.members(_households(api, api.city.township_a)[0])
    members[0] = {**members[0], **change}
    detail = assert_error(api.post("/checks", "sys", json={"as_of": AS_OF.isoformat(), "members": members}),
                          422, "invalid_request")
    assert [item["field"] for item in detail] == [field], description


def test_a_program_as_rolls_name_it_is_taken_for_its_code(api):
    household = next(h for h in _households(api, api.city.township_a) if api.city.truth_rules(h))
    body = _body(api, household)
    coded = api.post("/checks", "sys", json=body).json()
    named = {"dibao": "城市低保", "tekun": "五保"}
    body["members"] = [{**m, "program": named.get(m["program"], PROGRAMS[m["program"]])} for m in body["members"]]
    answer = api.post("/checks", "sys", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["flags"] == coded["flags"]  # the codes come back


def test_a_member_without_a_required_field_is_named(api):
    members = api.city.members(_households(api, api.city.township_a)[0])
    del members[-1]["id_number"]
    detail = assert_error(api.post("/checks", "sys", json={"members": members}), 422, "invalid_request")
    assert detail[0]["field"] == f"members[{len(members) - 1}].id_number"
    assert detail[0]["message"]


def test_no_members_is_refused(api):
    detail = assert_error(api.post("/checks", "sys", json={"members": []}), 422, "invalid_request")
    assert detail[0]["field"] == "members"


@pytest.mark.parametrize(("description", "change", "field"), [
    ("an unknown rule", {"rules": ["deceased", "no_such_rule"]}, "rules[1]"),
    ("an unknown cadence", {"cadences": ["weekly"]}, "cadences[0]"),
    ("record given as a number", {"record": 1}, "record"),
    ("a date given as a number", {"as_of": 20260630}, "as_of"),
    ("a misspelt field", {"recrod": True}, "recrod"),
])
def test_an_invalid_request_field_is_named(api, description, change, field):
    body = {**_body(api, _households(api, api.city.township_a)[0]), **change}
    detail = assert_error(api.post("/checks", "sys", json=body), 422, "invalid_request")
    assert [item["field"] for item in detail] == [field], description


def test_numbers_given_as_text_are_refused(api):
    members = api.city.members(_households(api, api.city.township_a)[0])[:1]
    members[0]["benefit_monthly"] = "880"
    detail = assert_error(api.post("/checks", "sys", json={"members": members}), 422, "invalid_request")
    assert detail[0]["field"] == "members[0].benefit_monthly"


def test_a_blank_name_is_named_like_any_invalid_field(api):
    members = api.city.members(_households(api, api.city.township_a)[0])[:2]
    members[1]["name"] = "　"  # a full-width space
    detail = assert_error(api.post("/checks", "sys", json={"members": members}), 422, "invalid_request")
    assert [item["field"] for item in detail] == ["members[1].name"]


def test_a_region_outside_the_token_is_refused(api):
    """A caseworker cannot check (nor record) a household of another township; nothing is run."""
    household = next(h for h in _households(api, api.city.township_b) if api.city.truth_rules(h))
    before = _counts(api)
    detail = assert_error(api.post("/checks", "cw_a", json=_body(api, household, record=True)), 403, "forbidden")
    assert "members[0].region_code" in detail
    assert _counts(api) == before
    # the same household is the other township's caseworker's to check
    assert api.post("/checks", "cw_b", json=_body(api, household)).status_code == 200


def test_an_invalid_id_is_a_warning_and_a_flag_not_an_error(api):
    members = api.city.members(_households(api, api.city.township_a)[0])[:1]
    members[0]["id_number"] = members[0]["id_number"][:-1] + ("0" if members[0]["id_number"][-1] != "0" else "1")
    body = api.post("/checks", "sys", json={"as_of": AS_OF.isoformat(), "members": members}).json()
    assert "id_invalid" in {f["rule_id"] for f in body["flags"]}
    assert body["warnings"] and body["warnings"][0].startswith("members[0].id_number")


def test_recording_needs_the_households_own_id(api):
    members = api.city.members(_households(api, api.city.township_a)[0])
    body = {"as_of": AS_OF.isoformat(), "members": members, "record": True}
    before = _counts(api)
    detail = assert_error(api.post("/checks", "sys", json=body), 422, "invalid_request")
    assert [item["field"] for item in detail] == ["household_id"]
    assert _counts(api) == before


def test_a_household_of_another_township_cannot_be_recorded_from_yours(api):
    """Flags are kept by household: findings recorded by township A under a household id of
    township B would clear B's flags, or take them over into A's region."""
    with api.store.read() as session:
        flag_b = session.scalars(sa.select(Flag).where(Flag.region_code.startswith(api.city.township_b))).first()
    members = api.city.members(_households(api, api.city.township_a)[0])  # people of A, under B's household id
    before = _counts(api)
    body = {"household_id": flag_b.household_id, "as_of": AS_OF.isoformat(), "members": members, "record": True}
    assert "cannot be recorded" in assert_error(api.post("/checks", "cw_a", json=body), 403, "forbidden")
    assert _counts(api) == before
    with api.store.read() as session:
        after = session.get(Flag, flag_b.id)
    assert (after.status, after.region_code, after.last_run_id) == (flag_b.status, flag_b.region_code, flag_b.last_run_id)
    assert api.post("/checks", "cw_a", json={**body, "record": False}).status_code == 200  # checking alone is fine


def test_a_person_already_on_the_roll_is_found(api):
    """An application naming someone the roll snapshot holds in another household."""
    household = _households(api, api.city.township_a)[0]
    member = {**api.city.members(household)[0], "program": "dibao"}
    body = {"household_id": "APP-2026-0003", "as_of": AS_OF.isoformat(), "members": [member]}
    flags = api.post("/checks", "cw_a", json=body).json()["flags"]
    duplicate = next(f for f in flags if f["rule_id"] == "duplicate_enrollment")
    assert household in json.dumps(duplicate["evidence"])


# The wait for the check queue's answer (api.routes.checks._within), on an event loop of its own.

def _waited(pending, timeout: float, answer_after: float | None = None, answer=None, error=None):
    """What _within gives (or raises) for `pending`, answered from another thread after
    `answer_after` seconds (never, if None)."""
    import asyncio
    import threading

    from api.routes.checks import _within

    if answer_after is not None:
        def answer_it() -> None:
            if error is not None:
                pending.set_exception(error)
            else:
                pending.set_result(answer)
        threading.Timer(answer_after, answer_it).start()
    return asyncio.run(_within(pending, timeout))


def test_the_answer_of_the_queue_is_given():
    from concurrent.futures import Future

    assert _waited(Future(), 5.0, answer_after=0.01, answer="flags") == "flags"


def test_an_answer_already_there_is_given():
    from concurrent.futures import Future

    pending = Future()
    pending.set_result("flags")
    assert _waited(pending, 5.0) == "flags"


def test_the_error_of_the_queue_is_raised():
    from concurrent.futures import Future

    from engine.errors import StoreBusy

    with pytest.raises(StoreBusy):
        _waited(Future(), 5.0, answer_after=0.01, error=StoreBusy("the check process stopped"))


def test_a_check_too_slow_times_out_and_its_answer_is_left_to_nobody():
    import time
    from concurrent.futures import Future

    pending = Future()
    with pytest.raises(TimeoutError):
        _waited(pending, 0.02, answer_after=0.2, answer="late")
    assert not pending.cancelled()  # the queue's worker must still be able to answer it
    time.sleep(0.3)
    assert pending.result() == "late"  # answered after the wait gave up, without an error


def test_a_caller_gone_leaves_the_queue_future_alone():
    import asyncio
    from concurrent.futures import Future

    from api.routes.checks import _within

    pending = Future()

    async def gone() -> None:
        task = asyncio.ensure_future(_within(pending, 5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pending.set_result("nobody's")  # the answer comes after the caller left: no error
        await asyncio.sleep(0.01)

    asyncio.run(gone())
    assert not pending.cancelled()


def test_snapshot_dates_follow_the_snapshots_the_check_read():
    """The dates are worked out once per set of snapshots held, and anew for another set (a new
    delivery makes a new index and a new `held`)."""
    from datetime import date
    from types import SimpleNamespace

    from api.routes.checks import _snapshot_dates

    june = {"hukou": SimpleNamespace(snapshot_date=date(2026, 6, 30)),
            "deaths": SimpleNamespace(snapshot_date=date(2026, 6, 1))}
    july = {"hukou": SimpleNamespace(snapshot_date=date(2026, 7, 31))}
    assert _snapshot_dates(june) == {"hukou": date(2026, 6, 30), "deaths": date(2026, 6, 1)}
    assert _snapshot_dates(june) is _snapshot_dates(june)  # the same set: not worked out again
    assert _snapshot_dates(july) == {"hukou": date(2026, 7, 31)}
    assert _snapshot_dates(june) == {"hukou": date(2026, 6, 30), "deaths": date(2026, 6, 1)}
