"""engine.batch.run_files: a run from files keeps only the roll's people's source rows, and
flags what a run over the whole sources flags."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from engine import ids, keying
from engine.batch import run_files
from engine.loaders import load, load_sources
from engine.policy import load_policy
from engine.run import run
from fixtures.generator import generate
from fixtures.writing import write
from schemas import SOURCES


@pytest.mark.parametrize("seed", [3, 11])
def test_a_run_from_files_flags_what_a_run_over_the_whole_sources_flags(tmp_path: Path, seed: int) -> None:
    """Planted cases of every rule, dirty and wrong IDs resolved against hukou, files of mixed
    formats: the flags and resolutions equal run()'s over every source row."""
    generated = generate(400, seed=seed, case_fraction=1.0)
    paths = write(generated, tmp_path, formats="mixed")
    from_files = run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])

    whole, _ = load_sources(paths["sources"], generated.as_of)
    roll = load(paths["roll"], "roll", generated.as_of).frame
    over_whole = run(roll, {key: item.frame.select(SOURCES[key].names) for key, item in whole.items()},
                     generated.as_of, load_policy(paths["policy"]))

    assert from_files.result.flags.height > 0
    assert from_files.result.flags.equals(over_whole.flags)
    assert from_files.result.resolutions.equals(over_whole.resolutions)


@pytest.mark.parametrize("reach", ["reachable", "missing the person", "unknown"])
def test_the_source_rows_of_a_person_found_by_resolution_are_kept(tmp_path: Path, monkeypatch, reach: str) -> None:
    """A roll ID keyed with two digits swapped is resolved to the hukou person's; that person's
    death record is kept, though no roll row gives their ID, and flagged. The sources are read
    before the roll is resolved, narrowed to what resolution can reach (engine.resolve.
    reachable), then to the people: the death of another ID one keying error from the roll's
    is not kept. Were reachable to miss the person, or be unknown, they are read again."""
    import engine.batch

    if reach != "reachable":
        empty = pl.Series("id_number", [], pl.String)
        monkeypatch.setattr(engine.batch, "reachable", lambda *_: empty if reach == "missing the person" else None)
    first17 = "32030219500303001"
    right = first17 + ids.check_char(first17)
    keyed = right[:10] + right[11] + right[10] + right[12:]
    assert keyed != right and not ids.is_valid(keyed)
    # Another roll row's mistyped ID, whose person hukou lacks: its neighbours are reachable,
    # and none is resolved to.
    other17 = "32030219600303002"
    mistyped = other17 + ids.CHECK_CHARS[(ids.CHECK_CHARS.index(ids.check_char(other17)) + 1) % 11]
    neighbour = min(keying.neighbours(mistyped))
    (tmp_path / "roll.csv").write_text(
        "救助类别,家庭编号,身份证号,姓名,行政区划代码,月保障金额,与户主关系\n"
        f"低保,H001,{keyed},张三,320302001001,800,户主\n"
        f"低保,H002,{mistyped},王五,320302001001,800,户主\n", encoding="utf-8")
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "hukou.csv").write_text(f"id_number,name,region_code,status\n{right},张三,320302001001,normal\n",
                                       encoding="utf-8")
    (sources / "deaths.csv").write_text(f"身份证号,姓名,死亡日期\n{right},张三,2026-03-15\n{neighbour},李四,2026-01-02\n",
                                        encoding="utf-8")

    from_files = run_files(tmp_path / "roll.csv", sources, date(2026, 6, 30))

    assert from_files.loaded["deaths"].frame["id_number"].to_list() == [right]
    assert from_files.loaded["deaths"].usable_rows == 2
    dead = from_files.result.flags.filter(pl.col("rule_id") == "deceased")
    assert dead["id_number"].to_list() == [right]


def test_only_the_roll_peoples_source_rows_are_kept_and_all_are_counted(tmp_path: Path) -> None:
    generated = generate(200, seed=7, case_fraction=1.0)
    paths = write(generated, tmp_path, formats="mixed")
    from_files = run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])
    whole, _ = load_sources(paths["sources"], generated.as_of)

    people = pl.concat([from_files.loaded["roll"].frame["id_number"], from_files.result.flags["id_number"]])
    for key, item in whole.items():
        narrowed = from_files.loaded[key]
        assert narrowed.usable_rows == item.frame.height
        assert narrowed.frame.columns == list(SOURCES[key].names)
        expected = item.frame.filter(pl.col("id_number").is_in(people.implode())).select(SOURCES[key].names)
        assert narrowed.frame.sort(pl.all()).equals(expected.sort(pl.all())), key
    assert from_files.loaded["hukou"].frame.height < whole["hukou"].frame.height


def test_without_a_usable_roll_the_sources_are_still_checked(tmp_path: Path) -> None:
    """Nothing is run, but every file's problems are listed: the roll's and the sources'."""
    from engine.errors import InputError

    generated = generate(50, seed=2)
    paths = write(generated, tmp_path)
    paths["roll"].write_text("", encoding="utf-8")
    deaths = paths["sources"] / "deaths.csv"
    deaths.write_text("姓名\n张三\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])
    assert {problem.file for problem in raised.value.problems} == {paths["roll"].name, deaths.name}


def test_problems_and_sources_come_in_the_contracts_order_however_the_threads_read_them(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    """Two threads read the sources: whichever finishes first, the problems are listed (and the
    sources kept) in the contract's order, so that a report reads the same on every run."""
    import time

    import engine.batch

    generated = generate(60, seed=5)
    paths = write(generated, tmp_path)
    for name in ("deaths.csv", "medical.csv"):  # a row of each rejected
        path = paths["sources"] / name
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[1] = "," + lines[1].split(",", 1)[1]  # its ID emptied
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_joined = engine.batch.pieces.load_joined

    def slow_deaths(path, key, *args, **kwargs):
        if key == "deaths":
            time.sleep(0.5)  # read last, though taken first
        return load_joined(path, key, *args, **kwargs)

    monkeypatch.setattr(engine.batch.pieces, "load_joined", slow_deaths)
    from_files = run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"],
                           resolve_ids=False)

    assert list(from_files.loaded) == ["roll", *(key for key in SOURCES if key in from_files.loaded)]
    files_in_order = [p.file for p in from_files.problems]
    assert files_in_order.index("deaths.csv") < files_in_order.index("medical.csv")


@pytest.mark.parametrize("outcome", ["run", "input error"])
def test_the_loading_ahead_is_over_when_a_run_returns(tmp_path: Path, monkeypatch, outcome: str) -> None:
    """Whatever the run's end: a thread still loading numba when the process exits aborts it
    (SIGABRT, "FATAL: exception not rethrown"), after the flags were written."""
    import threading
    import time

    from engine import batch
    from engine.errors import InputError

    finished = []

    def slow(kernels: bool, resolving: bool) -> None:  # as numba's start is beside a small run
        time.sleep(0.5)
        finished.append((kernels, resolving))

    monkeypatch.setattr(batch, "_load_ahead", slow)
    generated = generate(30, seed=4)
    paths = write(generated, tmp_path)
    if outcome == "input error":
        paths["roll"].write_text("", encoding="utf-8")
        with pytest.raises(InputError):
            run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])
    else:
        run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])
    assert finished == [(False, True)]  # small files: no kernels; the roll's IDs resolved: pypinyin
    assert not any(thread.name == "load-ahead" for thread in threading.enumerate())


def test_numba_starts_only_for_files_large_enough_for_the_kernels(tmp_path: Path) -> None:
    generated = generate(30, seed=4)
    paths = write(generated, tmp_path)
    script = ("import sys\nfrom datetime import date\nfrom engine.batch import run_files\n"
              f"run_files({str(paths['roll'])!r}, {str(paths['sources'])!r}, date.fromisoformat({generated.as_of.isoformat()!r}))\n"
              "print('numba' in sys.modules)\n")
    small = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    (paths["sources"] / "notes.bin").write_bytes(b"\0" * (1 << 20))  # not a source: only its size counts
    large = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    assert (small.stdout.split()[-1], large.stdout.split()[-1]) == ("False", "True")
