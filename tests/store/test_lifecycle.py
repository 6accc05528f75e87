"""The lifecycle as data: status from events, what a run decides, what a review may do."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import NotFound, ReviewError, ReviewIncomplete
from store import lifecycle
from store.lifecycle import EVENT_KINDS, REVIEWS, STATUS_ZH, decide, derive_status, next_status
from store.models import Flag, FlagEvent, utcnow
from store.runs import start_run

from .conftest import AS_OF


@pytest.mark.parametrize(
    ("kinds", "status"),
    [
        (["raised"], "open"),
        (["raised", "seen", "seen"], "open"),
        (["raised", "assigned"], "assigned"),
        (["raised", "assigned", "visited", "assigned"], "visited"),
        (["raised", "visited", "confirmed", "seen"], "confirmed"),
        (["raised", "dismissed", "seen"], "dismissed"),
        (["raised", "dismissed", "reopened"], "open"),
        (["raised", "cleared"], "cleared"),
        (["raised", "cleared", "reopened", "seen"], "open"),
        (["raised", "confirmed", "appealed"], "appealed"),
        (["raised", "confirmed", "resolved"], "resolved"),
    ],
)
def test_status_is_a_fold_of_the_events(kinds, status):
    assert derive_status(kinds) == status


@pytest.mark.parametrize(
    ("status", "same_evidence", "found", "kind"),
    [
        (None, True, True, "raised"),
        ("open", True, True, "seen"),
        ("open", False, True, "seen"),
        ("assigned", True, False, "cleared"),
        ("visited", True, False, "cleared"),
        ("open", True, False, "cleared"),
        ("appealed", True, False, None),
        ("confirmed", True, False, None),
        ("confirmed", False, True, "seen"),
        ("dismissed", True, True, "seen"),
        ("dismissed", False, True, "reopened"),
        ("dismissed", True, False, None),
        ("resolved", False, True, "reopened"),
        ("cleared", True, True, "reopened"),
        ("cleared", True, False, None),
    ],
)
def test_what_a_run_decides(status, same_evidence, found, kind):
    existing = {} if status is None else {"k": (status, "fp")}
    result = decide({"k": "fp" if same_evidence else "new"} if found else {}, existing)
    assert result.get("k", (None,))[0] == kind


statuses = st.sampled_from(list(STATUS_ZH))
state = st.dictionaries(st.text("abcd", min_size=1, max_size=2), st.tuples(statuses, st.sampled_from(["x", "y"])))


@given(state, st.dictionaries(st.text("abcd", min_size=1, max_size=2), st.sampled_from(["x", "y"])))
def test_deciding_twice_raises_no_alert_the_second_time(existing, found):
    """Apply a run's decisions, then the same findings again: nothing new, nothing cleared."""
    after = dict(existing)
    for key, (kind, _) in decide(found, existing).items():
        status = after[key][0] if key in after else None
        after[key] = (next_status(status, kind), found.get(key, after.get(key, (None, None))[1]))
    second = decide(found, after)
    assert {kind for kind, _ in second.values()} <= {"seen"}


@given(st.lists(st.sampled_from(EVENT_KINDS), min_size=1))
def test_every_sequence_has_a_known_status(kinds):
    assert derive_status(["raised", *kinds]) in STATUS_ZH


# ---- reviews against the store --------------------------------------------------------------


@pytest.fixture
def flag_id(store, deliver, city) -> int:
    deliver.all(city)
    start_run(store, AS_OF, rules=["deceased"])
    with store.read() as session:
        return session.scalars(sa.select(Flag.id).where(Flag.overpayment > 0).order_by(Flag.id)).first()


def act(store, flag_id: int, verb: str, by: str = "王芳", **detail):
    with store.write(lock="test") as session:
        return lifecycle.review(session, flag_id, verb, by, utcnow(), **detail)


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([("dismiss", {"reason": "x"})], ("confirm", {"action": "stop"})),
        ([("dismiss", {"reason": "x"})], ("resolve", {})),
        ([], ("resolve", {})),
        ([], ("appeal", {"note": "x"})),
        ([], ("reopen", {"reason": "x"})),
        ([("confirm", {"action": "stop"}), ("resolve", {})], ("dismiss", {"reason": "x"})),
    ],
)
def test_reviews_only_where_the_status_allows(store, flag_id, path, refused):
    for verb, detail in path:
        act(store, flag_id, verb, **detail)
    verb, detail = refused
    with pytest.raises(ReviewError, match="applies only to flags that are"):
        act(store, flag_id, verb, **detail)


@pytest.mark.parametrize(
    ("verb", "detail", "message"),
    [
        ("assign", {}, "核查人"),
        ("visit", {}, "needs its findings"),
        ("visit", {"income": "abc"}, "核实月收入须为金额"),
        ("visit", {"income": "-5"}, "核实月收入不能为负数"),
        ("confirm", {}, "停发、减发或追缴"),
        ("confirm", {"action": "fine"}, "needs an action"),
        ("dismiss", {}, "排除需写明理由"),
        ("teleport", {}, "unknown review action"),
    ],
)
def test_reviews_need_their_details(store, flag_id, verb, detail, message):
    """The input's fault, not the flag's status (the API answers 422, not 409); said in Chinese
    and English, naming no command-line option (the API and the pages show it too)."""
    with pytest.raises(ReviewIncomplete, match=message) as refused:
        act(store, flag_id, verb, **detail)
    assert "--" not in str(refused.value)


def test_a_review_needs_someone_and_an_existing_flag(store, flag_id):
    with pytest.raises(ReviewIncomplete, match="处理人"):
        act(store, flag_id, "assign", by=" ", to="x")
    with pytest.raises(NotFound):
        act(store, 99999, "assign", to="x")


def test_a_whole_case_is_recorded_with_who_and_when(store, flag_id):
    act(store, flag_id, "assign", by="李科长", to="王芳")
    act(store, flag_id, "visit", income="1200.5", expenditure=800, living="独居", note="邻居证实")
    event = act(store, flag_id, "confirm", action="recover")
    with store.read() as session:
        flag = session.get(Flag, flag_id)
        history = session.scalars(sa.select(FlagEvent).where(FlagEvent.flag_id == flag_id).order_by(FlagEvent.id)).all()
    assert event.detail == {"action": "recover", "amount": flag.overpayment}  # the estimate, when no amount is given
    assert [(e.kind, e.by) for e in history] == [("raised", "system"), ("assigned", "李科长"), ("visited", "王芳"),
                                                 ("confirmed", "王芳")]
    assert history[2].detail == {"income": 1200.5, "expenditure": 800.0, "living": "独居", "note": "邻居证实"}
    assert flag.assignee == "王芳" and flag.status == "confirmed"
    act(store, flag_id, "appeal", note="家属申诉")
    act(store, flag_id, "dismiss", reason="申诉成立")
    act(store, flag_id, "reopen", reason="新证据")
    with store.read() as session:
        assert session.get(Flag, flag_id).status == "open"
    assert set(REVIEWS) == {"assign", "visit", "confirm", "dismiss", "appeal", "resolve", "reopen"}


def test_events_are_append_only_in_the_database(store, flag_id):
    for statement in (sa.update(FlagEvent).values(by="someone else"), sa.delete(FlagEvent)):
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as connection:
                connection.execute(statement)
