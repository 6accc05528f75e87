"""The checker in a child process answers exactly as the checker in this process does, and a
child that dies fails what waits on it and is replaced."""

from __future__ import annotations

import os
import pickle
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from engine.errors import SelectionError, StoreBusy
from engine.loaders import load_frame
from store.check_process import _YOUNG, CheckProcess, _compact, _drained
from store.checks import Checker

from .conftest import AS_OF
from .test_check_queue import _alone, _members


@pytest.fixture
def delivered(store, deliver, city):
    deliver.all(city)
    return store


@pytest.fixture
def child(delivered, settings):
    process = CheckProcess(settings)
    process.start()
    yield process
    process.stop()


def test_checks_in_the_child_equal_checks_in_process(child, delivered, city):
    checker = Checker(delivered)
    households = city.roll.get_column("household_id").unique().sort().to_list()[:40]
    with ThreadPoolExecutor(16) as pool:
        futures = list(pool.map(lambda h: child.submit(_members(city, h).to_dict(as_series=False), AS_OF), households))
    answers = [future.result(timeout=120) for future in futures]
    found = 0
    for household, answer in zip(households, answers, strict=True):
        expected = _alone(checker, _members(city, household))
        assert answer.flags is None  # sent as rows; the frame is made only when asked
        assert answer.flags_frame().equals(expected), household
        assert answer.rows == expected.to_dicts()
        found += expected.height
    assert found > 0
    _, held = checker.current()
    assert {key: snap.id for key, snap in answers[0].held.items()} == {key: snap.id for key, snap in held.items()}
    assert answers[-1].held[next(iter(held))].snapshot_date == AS_OF  # sent once, named by ids afterwards


def test_a_batch_frame_is_checked_in_the_child_as_in_process(child, delivered, city):
    households = city.roll.get_column("household_id").unique().sort().to_list()[:30]
    rows = city.roll.filter(pl.col("household_id").is_in(households))
    frame = load_frame(rows.select([pl.col(c).cast(pl.String) for c in rows.columns]), "roll", "batch", AS_OF).frame
    result, held = child.check(frame, AS_OF)
    expected, expected_held = Checker(delivered).check(frame, AS_OF)
    assert result.flags.equals(expected.flags) and result.flags.height > 0
    assert result.ran == expected.ran
    assert {k: s.id for k, s in held.items()} == {k: s.id for k, s in expected_held.items()}


def test_an_error_in_the_child_reaches_the_caller_as_itself(child, city):
    members = _members(city, city.roll.get_column("household_id")[0]).to_dict(as_series=False)
    with pytest.raises(SelectionError, match="no_such_rule"):
        child.submit(members, AS_OF, rules=["no_such_rule"]).result(timeout=120)
    assert child.submit(members, AS_OF).result(timeout=120).ran  # and the child goes on


def test_a_request_that_cannot_cross_the_pipe_fails_alone(child, city):
    """Requests cross in bundles: one that cannot be pickled fails, those beside it are checked."""
    households = city.roll.get_column("household_id").unique().sort().to_list()[:3]
    good = [_members(city, h).to_dict(as_series=False) for h in households]
    bad = {**good[0], "name": [lambda: None] * len(good[0]["name"])}
    futures = [child.submit(good[0], AS_OF), child.submit(bad, AS_OF), *[child.submit(g, AS_OF) for g in good[1:]]]
    with pytest.raises(Exception, match="pickle"):
        futures[1].result(timeout=120)
    assert all(future.result(timeout=120).ran for future in futures[:1] + futures[2:])


def test_rows_that_are_not_a_household_fail_alone_in_the_child(child, city):
    members = _members(city, city.roll.get_column("household_id")[0]).to_dict(as_series=False)
    nameless = {key: values for key, values in members.items() if key != "household_id"}
    futures = [child.submit(members, AS_OF), child.submit(nameless, AS_OF), child.submit(members, AS_OF)]
    with pytest.raises(KeyError, match="household_id"):
        futures[1].result(timeout=120)
    assert futures[0].result(timeout=120).ran and futures[2].result(timeout=120).ran
    assert child.state() == "ok" and child.started == 1


def test_what_the_child_holds_when_a_group_ends_is_checked_together(delivered, settings, city):
    """The child reads every request the pipe holds before it checks the next group: requests
    that arrive while it checks one are gathered into the next."""
    households = city.roll.get_column("household_id").unique().sort().to_list()[:9]
    members = [_members(city, h).to_dict(as_series=False) for h in households]
    process = CheckProcess(settings)
    process.start()
    try:
        first = process.submit(members[0], AS_OF)  # waits for the child to start and build its index
        rest = [process.submit(m, AS_OF) for m in members[1:]]
        answers = [first.result(timeout=120), *(future.result(timeout=120) for future in rest)]
    finally:
        process.stop()
    # All sent while the child was starting: read at once, checked as one group.
    assert [answer.together for answer in answers] == [len(households)] * len(households)


def test_a_dead_child_fails_what_waits_and_is_replaced(delivered, settings, city):
    process = CheckProcess(settings)
    process.start()
    try:
        members = _members(city, city.roll.get_column("household_id")[0]).to_dict(as_series=False)
        waiting = process.submit(members, AS_OF)  # the child is still importing: it cannot have answered
        process._process.kill()
        with pytest.raises(StoreBusy):
            waiting.result(timeout=60)
        answer = process.submit(members, AS_OF).result(timeout=120)
        assert process.started == 2
        assert answer.flags_frame().equals(_alone(Checker(delivered), _members(city, city.roll.get_column("household_id")[0])))
    finally:
        process.stop()


def test_a_child_that_dies_after_starting_is_replaced_at_once(child, city):
    members = _members(city, city.roll.get_column("household_id")[0]).to_dict(as_series=False)
    child.submit(members, AS_OF).result(timeout=120)  # it has lived long enough to be worth restarting
    time.sleep(max(0.0, _YOUNG - (time.monotonic() - child.born)))
    child._process.kill()
    deadline = time.monotonic() + 30
    while child.started < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.started == 2 and child.state() == "ok"  # restarted before any check asked
    assert child.submit(members, AS_OF).result(timeout=120).ran


def test_state_says_whether_the_child_runs(delivered, settings):
    process = CheckProcess(settings)
    assert process.state() == "stopped: started again by the next check"
    process.start()
    assert process.state() == "ok"
    process.stop()
    assert process.state() == "stopped"


def test_what_waits_to_cross_the_pipe_goes_as_one_message():
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    for message in ("a", "b", "c"):
        outbox.put(message)
    drained = _drained(outbox)
    assert next(drained) == (["a", "b", "c"], False)
    outbox.put("d")
    outbox.put(None)  # the end: what came before it still goes
    outbox.put("never")
    assert list(drained) == [(["d"], True)]


def test_frames_cross_the_pipe_with_their_own_rows_only():
    # A row filtered out of a large frame of nested strings (as a batch's resolutions are out of
    # the roll's) still shares its buffers, and pickling writes them whole.
    rows = 100_000
    candidates = [[{"id_number": f"{i:018d}", "score": 1.0}] for i in range(rows)]
    large = pl.DataFrame({"n": range(rows), "candidates": candidates})
    one = large.with_columns(pl.struct("candidates").alias("resolution")).filter(pl.col("n") == 5)
    compact = _compact(one)
    assert compact.equals(one)
    assert len(pickle.dumps(compact)) < 10_000 < len(pickle.dumps(one))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_child_has_the_polars_threads_it_is_given(delivered, settings, city, threads):
    process = CheckProcess(settings.model_copy(update={"check_threads": threads}))
    process.start()
    try:
        members = _members(city, city.roll.get_column("household_id")[0]).to_dict(as_series=False)
        process.submit(members, AS_OF).result(timeout=120)
        tasks = Path(f"/proc/{process._process.pid}/task")
        pool = [t for t in tasks.iterdir() if re.fullmatch(r"polars-\d+", (t / "comm").read_text().strip())]
        assert len(pool) == threads
    finally:
        process.stop()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to choose from")
@pytest.mark.parametrize("threads, pin, pinned", [(1, True, True), (1, False, False), (2, True, False)])
def test_a_child_on_one_polars_thread_keeps_to_one_cpu(delivered, settings, city, threads, pin, pinned):
    process = CheckProcess(settings.model_copy(update={"check_threads": threads, "check_pin": pin}))
    process.start()
    try:
        members = _members(city, city.roll.get_column("household_id")[0]).to_dict(as_series=False)
        process.submit(members, AS_OF).result(timeout=120)
        tasks = Path(f"/proc/{process._process.pid}/task").iterdir()
        cpus = {frozenset(os.sched_getaffinity(int(task.name))) for task in tasks}
        mine = frozenset(os.sched_getaffinity(0))
        if pinned:  # all on one CPU of the server's
            assert len(cpus) == 1 and len(next(iter(cpus))) == 1 and next(iter(cpus)) <= mine
        else:
            assert cpus == {mine}
    finally:
        process.stop()


def _affinities() -> dict[int, set[int]]:
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            found[int(task.name)] = os.sched_getaffinity(int(task.name))
        except OSError:  # gone meanwhile
            pass
    return found


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to choose from")
def test_the_servers_threads_keep_off_the_check_process_cpu_but_polars_pool(settings):
    from store.check_process import _polars_pool

    process = CheckProcess(settings.model_copy(update={"check_threads": 1, "check_pin": True}))
    process.start()
    try:
        cpu = process.cpu
        assert cpu is not None
        before = _affinities()
        undo = process.keep_off()
        try:
            pool = _polars_pool()
            assert pool
            for task, cpus in _affinities().items():
                if task in pool:  # the server's own polars work keeps every CPU
                    assert cpu in cpus
                elif task in before:  # a thread that may run on that CPU only is left there
                    assert cpus == (before[task] - {cpu} or before[task]), task
            started: dict[str, set[int]] = {}
            thread = threading.Thread(target=lambda: started.setdefault("cpus", os.sched_getaffinity(0)))
            thread.start()
            thread.join()
            assert cpu not in started["cpus"]  # inherited by threads started later
            later = threading.Event()
            alive = threading.Thread(target=later.wait, daemon=True)  # started while kept off
            alive.start()
            assert cpu not in os.sched_getaffinity(alive.native_id)
            deadline = time.monotonic() + 60  # the child pins itself as it starts
            while os.sched_getaffinity(process._process.pid) != {cpu} and time.monotonic() < deadline:
                time.sleep(0.05)
            assert os.sched_getaffinity(process._process.pid) == {cpu}
        finally:
            undo()
        after = _affinities()
        assert all(after[task] == cpus for task, cpus in before.items() if task in after)
        # ... and the thread started meanwhile has the CPUs of the thread that started it again.
        assert os.sched_getaffinity(alive.native_id) == before[threading.get_native_id()]
        later.set()
    finally:
        process.stop()


@pytest.mark.parametrize("update", [{"check_pin": False}, {"check_threads": 2}])
def test_nothing_is_kept_off_when_the_check_process_keeps_to_no_cpu(settings, update):
    process = CheckProcess(settings.model_copy(update=update))
    process.start()
    try:
        assert process.cpu is None
        before = _affinities()
        process.keep_off()()
        assert {task: cpus for task, cpus in _affinities().items() if task in before} == before
    finally:
        process.stop()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to choose from")
def test_the_cpu_kept_is_the_one_the_thread_runs_on():
    from store.check_process import _running_on

    cpus = os.sched_getaffinity(0)
    found = {}

    def probe(cpu: int) -> None:
        os.sched_setaffinity(0, {cpu})  # this thread only, moved there at once
        found[cpu] = _running_on(cpus)

    for cpu in sorted(cpus)[:2]:
        thread = threading.Thread(target=probe, args=(cpu,))
        thread.start()
        thread.join()
    assert found == {cpu: cpu for cpu in sorted(cpus)[:2]}
