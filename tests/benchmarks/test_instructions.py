"""benchmarks/instructions.py, instructions counted by valgrind, and the request bodies it and
bench_api.py send: what it refuses, and households as the roll wrote them."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import polars as pl
import pytest

from . import SCRIPTS, script


def _roll() -> pl.DataFrame:
    """A loaded roll's columns that a request is made of: three households, one ID written dirty."""
    return pl.DataFrame({
        "household_id": ["H1", "H1", "H2", "H3"],
        "id_number": ["320303196503024029", "320303199001011234", "32030319800101123X", "320303197001019876"],
        "id_number_raw": ["320303196503024029", "3.20303E+17", "32030319800101123x", "320303197001019876"],
        "name": ["李秀英", "张三", "王五", "赵六"], "program": ["dibao", "dibao", "tekun", "dibao"],
        "region_code": ["320303001"] * 4, "benefit_monthly": [880.0, 880.0, None, 700.0],
        "declared_income_monthly": [0.0, 120.5, None, 0.0], "relation": ["户主", "子女", "户主", None],
    })


def test_bodies_are_whole_households_with_their_ids_as_written():
    bodies = script("bench_api").bodies_of(_roll(), 2, seed=3)
    assert len(bodies) == 2 and len({body["household_id"] for body in bodies}) == 2
    written = dict(zip(_roll()["name"], _roll()["id_number_raw"], strict=True))
    for body in bodies:
        members = _roll().filter(pl.col("household_id") == body["household_id"])
        assert [m["name"] for m in body["members"]] == members["name"].to_list()
        assert all(m["id_number"] == written[m["name"]] for m in body["members"])
        assert all(isinstance(m["benefit_monthly"], float) for m in body["members"])


def test_the_same_seed_draws_the_same_bodies_and_more_than_there_are_draws_all():
    bench_api = script("bench_api")
    assert bench_api.bodies_of(_roll(), 2, seed=5) == bench_api.bodies_of(_roll(), 2, seed=5)
    assert {body["household_id"] for body in bench_api.bodies_of(_roll(), 10, seed=5)} == {"H1", "H2", "H3"}


def test_applicants_are_hukou_persons_the_roll_does_not_hold_in_new_households(tmp_path: Path):
    city = tmp_path / "city"
    (city / "sources").mkdir(parents=True)
    _roll().select("household_id", "id_number").write_parquet(city / "roll.parquet")
    hukou_ids = [*_roll()["id_number"], *(f"32030319900101{n:03d}1" for n in range(40))]
    pl.DataFrame({"id_number": hukou_ids, "name": [f"人{n}" for n in range(len(hukou_ids))],
                  "region_code": ["320303001"] * len(hukou_ids)}).write_parquet(city / "sources" / "hukou.parquet")
    bodies = script("bench_api").applicants_of(city, 6, seed=2)
    members = [m for body in bodies for m in body["members"]]
    assert len(bodies) == 6 and all(1 <= len(body["members"]) <= 4 for body in bodies)
    assert not {m["id_number"] for m in members} & set(_roll()["id_number"])  # nobody of the roll
    assert len({m["id_number"] for m in members}) == len(members)  # nobody twice
    assert not {body["household_id"] for body in bodies} & set(_roll()["household_id"])
    assert [body["members"][0]["relation"] for body in bodies] == ["户主"] * 6


def test_its_help_says_what_it_counts_and_what_it_needs():
    shown = subprocess.run([sys.executable, str(SCRIPTS / "instructions.py"), "--help"], capture_output=True,
                           text=True, check=True).stdout
    assert "--data-dir" in shown and "valgrind" in shown and "instructions" in shown


def test_without_valgrind_it_says_how_to_install_it(monkeypatch):
    instructions = script("instructions")
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install valgrind"):
        instructions._counted("engine", Namespace(), {})


def test_a_directory_without_a_database_is_refused(tmp_path: Path):
    shown = subprocess.run([sys.executable, str(SCRIPTS / "instructions.py"), "--data-dir", str(tmp_path)],
                           capture_output=True, text=True)
    assert shown.returncode != 0 and "no crosscheck.db" in shown.stderr


def test_the_cpu_of_a_process_and_its_children_is_read_from_proc():
    bench_api = script("bench_api")
    busy_then_idle = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", busy_then_idle])
    try:
        parent = os.getpid()
        assert child.pid in bench_api.children_of(parent)
        deadline = time.monotonic() + 20
        while bench_api.cpu_s(child.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0.25 <= bench_api.cpu_s(child.pid) < 5
        server, children, client = bench_api.cpu_times(parent)
        assert children >= 0.25 and server > 0 and client > 0
    finally:
        child.kill()
        child.wait()
    assert math.isnan(bench_api.cpu_s(child.pid))  # gone (reaped)


def test_the_cpu_bound_is_the_cores_over_the_cpu_a_request():
    bound = script("bench_api").cpu_bound(300.0, 400.0, 100.0, cores=2)
    assert bound == ("CPU a request 800 µs (server 300, check process 400, load generator 100): "
                     "2 cores could answer at most 2,500 a second")
    assert script("bench_api").cpu_bound(float("nan"), 1.0, 1.0, cores=2) == "CPU a request not measured"


def test_with_the_check_process_on_one_core_the_busiest_core_bounds_the_throughput():
    bound = script("bench_api").cpu_bound
    assert bound(300.0, 400.0, 100.0, cores=2, checker_cores=1) == (
        "CPU a request 800 µs (server 300, check process 400, load generator 100): the check process's core "
        "could answer at most 2,500 a second, the other core at most 2,500; the check process's binds")
    assert bound(400.0, 250.0, 100.0, cores=2, checker_cores=1).endswith(
        "the check process's core could answer at most 4,000 a second, the other core at most 2,000; "
        "the server's and load generator's bind")
    assert bound(1400.0, 250.0, 100.0, cores=4, checker_cores=1).endswith(
        "the other 3 cores at most 2,000; the server's and load generator's bind")
    assert bound(300.0, 400.0, 100.0, cores=1, checker_cores=1).endswith("1 core could answer at most 1,250 a second")
    assert bound(300.0, 0.0, 100.0, cores=2, checker_cores=1).endswith("2 cores could answer at most 5,000 a second")


def test_the_cores_the_check_process_keeps_to_are_read_from_its_affinity(monkeypatch):
    """The check process is the server's busiest child: another (multiprocessing's resource
    tracker) idles on every CPU."""
    bench_api = script("bench_api")
    one_cpu = ("import os, time; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); t = time.process_time()\n"
               "while time.process_time() - t < 0.3: pass\nprint(flush=True); time.sleep(30)")
    busy = subprocess.Popen([sys.executable, "-c", one_cpu], stdout=subprocess.PIPE)
    idle = subprocess.Popen([sys.executable, "-c", "print(flush=True); import time; time.sleep(30)"],
                            stdout=subprocess.PIPE)
    try:
        busy.stdout.readline()  # it has kept to one CPU and used 0.3 s of it
        idle.stdout.readline()
        children = {1234: [idle.pid, busy.pid], 4321: [busy.pid, idle.pid]}
        monkeypatch.setattr(bench_api, "children_of", lambda pid: children.get(pid, []))
        assert bench_api.checker_cores(1234) == bench_api.checker_cores(4321) == 1
        assert bench_api.checker_cores(5678) is None  # no check process
    finally:
        for child in (busy, idle):
            child.kill()
            child.wait()
    assert bench_api.checker_cores(1234) is None  # gone
