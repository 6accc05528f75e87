"""engine.keyed: a frame sorted by ID code finds each ID's rows (in memory, from its mapped
file, and over many IDs by its bulk search), and its file is mapped, not read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ids import from_code
from engine import keyed as keyed_module
from engine.keyed import _FEW, _STEPS, Keyed, codes_of


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "id_number": ["110105194912310021", "11010519491231002X", "110105194912310021", "short", None,
                      "320303199001010012"],
        "name": ["张 伟", "李四", "张伟", "王五", "赵六", "钱七"],
        "region_code": ["110105001", "110105", "110105001002", "320303", "320303", "320303001"],
        "amount": [1.5, None, 3.0, 4.0, 5.0, 6.0],
    })


def test_keyed_lookups_give_the_rows_of_each_id(tmp_path: Path) -> None:
    frame = _frame()
    Keyed.of(frame, names=True).write(tmp_path / "k.arrow")
    assert (tmp_path / "k.arrow.odd").exists()  # the rows without an ID code
    for keyed in (Keyed.of(frame, names=True), Keyed.read(tmp_path / "k.arrow")):
        assert keyed is not None and keyed.height == frame.height
        def rows(found: pl.DataFrame) -> list[tuple]:
            return sorted(found.select(frame.columns).rows(), key=str)
        for ids in (["110105194912310021"], ["11010519491231002X", "short", "320303199001010012"], ["nobody"], []):
            assert rows(keyed.rows(ids)) == rows(frame.filter(pl.col("id_number").is_in(ids)))
        assert rows(keyed.starting(["11010519491231"])) == rows(frame.filter(pl.col("id_number").str.starts_with("11010519491231")))
        # the name block: township (9 digits of the region) and name key (spaces dropped)
        assert {r[1] for r in rows(keyed.named(["110105001\x1f张伟"]))} >= {"张 伟", "张伟"}
        assert keyed.named(["110105001\x1f李四"]).filter(pl.col("name") == "李四").height == 0  # another township


def test_a_name_index_of_another_name_key_is_made_again_on_reading(tmp_path: Path, monkeypatch) -> None:
    """A file written before names.key folded full-width forms indexed 'ＪＯＨＮ' under its own
    key: read with today's key, the name block still finds it as 'JOHN'."""
    import engine.keyed as keyed_module

    frame = _frame().with_columns(pl.Series("name", ["ＪＯＨＮ", "李四", "张伟", "王五", "赵六", "钱七"]))
    monkeypatch.setattr(keyed_module.names, "key_expr", lambda name: name)  # as an old writer keyed names
    monkeypatch.setattr(keyed_module.names, "KEY_VERSION", 1)
    Keyed.of(frame, names=True).write(tmp_path / "old.arrow")
    monkeypatch.undo()
    old = Keyed.read(tmp_path / "old.arrow")
    assert old is not None and old.named(["110105001\x1fJOHN"]).get_column("name").to_list() == ["ＪＯＨＮ"]


_BIG = 2_000_000


def _big_file(path: Path, **more: pl.Series) -> Path:
    """A keyed file of _BIG people, one row each: IDs 000…01, 000…11, … (the number, then 1)."""
    frame = pl.DataFrame({"id_number": pl.int_range(0, _BIG, eager=True).cast(pl.String).str.zfill(17) + "1",
                          **more, "amount": pl.int_range(0, _BIG, eager=True).cast(pl.Float64)})
    Keyed.of(frame).write(path)
    return path


def test_a_keyed_file_is_mapped_not_read(tmp_path: Path) -> None:
    """Reading a keyed file of 2M rows costs no memory until its pages are looked at."""
    _big_file(tmp_path / "big.arrow")
    script = (
        "import sys, resource; from pathlib import Path; from engine.keyed import Keyed\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"keyed = Keyed.read(Path({str(tmp_path / 'big.arrow')!r}))\n"
        "found = keyed.rows(['000000000000123451'])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, found['amount'].to_list())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["[12345.0]"]
    assert int(out[0]) < 20_000  # KiB: the 2M codes (16 MB) and amounts were not read in whole


def test_another_format_is_not_read(tmp_path: Path) -> None:
    pl.DataFrame({"_code": [1]}).write_ipc(tmp_path / "old.arrow")
    assert Keyed.read(tmp_path / "old.arrow") is None


# IDs by their number: 17 digits and the check character (from_code), so the codes are the
# numbers and every run of equal codes is one person's rows.
_NUMBERS = st.integers(min_value=0, max_value=2_000)
_PERSONS = st.lists(st.tuples(_NUMBERS, st.integers(1, _STEPS + 3)), max_size=20)  # ≤ 220 rows
_WANTED = st.sets(_NUMBERS, min_size=_FEW + 1, max_size=_FEW + 300)  # more than _FEW, so bulk


@pytest.mark.parametrize("others", [0, 3_000], ids=["fewer rows than IDs", "more rows than IDs"])
@settings(max_examples=40, deadline=None)
@given(persons=_PERSONS, wanted=_WANTED)
def test_many_ids_are_found_as_a_filter_finds_them(others: int, persons: list[tuple[int, int]],
                                                     wanted: set[int]) -> None:
    """Over more IDs than _FEW, rows are found by the bulk search: the source's codes searched
    among the IDs when it has fewer rows, else the IDs among its codes, stepping on over each
    person's rows (up to _STEPS, then a search). The rows a filter finds, in the keyed order,
    each with the ID it was looked up by. `others`: people never looked up, one row each."""
    numbers = [number for number, count in persons for _ in range(count)] + list(range(10_000, 10_000 + others))
    frame = pl.DataFrame({"id_number": [from_code(n) for n in numbers], "at": list(range(len(numbers)))},
                         schema={"id_number": pl.String, "at": pl.Int64})
    looked_up = [from_code(n) for n in wanted]
    expected = frame.filter(pl.col("id_number").is_in(looked_up)).sort("id_number", "at")
    found = Keyed.of(frame).rows(pl.Series(looked_up, dtype=pl.String))
    assert found.rows() == expected.rows()



@settings(max_examples=40, deadline=None)
@given(persons=_PERSONS, wanted=st.one_of(st.sets(_NUMBERS, max_size=_FEW), _WANTED))
def test_the_rows_at_the_positions_of_ids_are_their_rows(persons: list[tuple[int, int]], wanted: set[int]) -> None:
    """positions then at, as engine.check reads a person's roll rows in two steps (which rows,
    then only those it wants): the rows `rows` finds, in the keyed order, for few IDs and many."""
    numbers = [number for number, count in persons for _ in range(count)]
    frame = pl.DataFrame({"id_number": [from_code(n) for n in numbers], "at": list(range(len(numbers)))},
                         schema={"id_number": pl.String, "at": pl.Int64})
    keyed = Keyed.of(frame)
    codes = codes_of([from_code(n) for n in wanted])
    positions = keyed.positions(codes)
    assert list(positions) == sorted(positions)
    assert keyed.at(positions).rows() == keyed.rows(codes.ids, codes).rows()
    assert keyed.at(positions[:0]).columns == frame.columns


@settings(max_examples=60, deadline=None)
@given(many=st.lists(_NUMBERS, max_size=300), few=st.lists(_NUMBERS, max_size=30))
def test_codes_hold_the_codes_of_their_ids(many: list[int], few: list[int]) -> None:
    """engine.indexed asks which IDs resolution found are new to the roll."""
    codes = codes_of([from_code(n) for n in many])
    assert codes.holds(np.array(few, dtype=np.int64)).tolist() == [n in set(many) for n in few]


def test_a_file_sunk_from_a_scan_is_the_file_written_from_memory(tmp_path: Path, monkeypatch) -> None:
    """Keyed.sink (polars' streaming sort, for sources too big to sort in memory) writes what
    Keyed.of(...).write writes; in batches of BATCH rows, read back as several chunks."""
    frame = pl.concat([_frame(), _frame().with_columns(pl.col("amount") * 10)])
    Keyed.of(frame, names=True).write(tmp_path / "whole.arrow")
    frame.write_parquet(tmp_path / "source.parquet")
    monkeypatch.setattr(keyed_module, "BATCH", 3)
    assert Keyed.sink(pl.scan_parquet(tmp_path / "source.parquet"), tmp_path / "sunk.arrow", names=True) == 12
    Keyed.of(frame, names=True).write(tmp_path / "batched.arrow")
    whole = Keyed.read(tmp_path / "whole.arrow")
    assert whole is not None and whole.frame.n_chunks() == 1
    for name in ("sunk.arrow", "batched.arrow"):
        other = Keyed.read(tmp_path / name)
        assert other is not None and other.frame.n_chunks() > 1
        assert other.codes.tolist() == whole.codes.tolist()
        assert other.frame.equals(whole.frame) and other.odd.equals(whole.odd)
        assert [a.tolist() for a in other.name_index] == [a.tolist() for a in whole.name_index]
        some = ["110105194912310021", "11010519491231002X", "short"]
        assert other.rows(some).equals(whole.rows(some))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
def test_released_pages_stop_counting_and_the_rows_stay(tmp_path: Path) -> None:
    """Keyed.release unmaps the pages a lookup read: the process's file-backed memory falls
    back, and the rows found (which may point into the file) read the same afterwards."""
    _big_file(tmp_path / "big.arrow", where=pl.Series(["某某省某某市某某县某某乡某某村"] * _BIG))
    script = (
        "import polars as pl; from pathlib import Path; from engine.keyed import Keyed\n"
        "def file_kib(): return int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('RssFile')))\n"
        f"keyed = Keyed.read(Path({str(tmp_path / 'big.arrow')!r}))\n"
        "before = file_kib()\n"
        "ids = pl.int_range(0, 2_000_000, 7, eager=True).cast(pl.String).str.zfill(17) + '1'\n"
        "found = keyed.rows(ids)\n"
        "read = file_kib()\n"
        "first = found.rows()[:3], found['amount'].sum(), found['where'].str.len_chars().sum()\n"
        "keyed.release()\n"
        "released = file_kib()\n"
        "again = found.rows()[:3], found['amount'].sum(), found['where'].str.len_chars().sum()\n"
        "print(read - before, released - before, first == again, found.height)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    touched, left, same, height = int(out[0]), int(out[1]), out[2], int(out[3])
    assert touched > 40_000  # KiB: most pages of the 2M rows' codes, amounts and texts were read
    assert left < touched / 4
    assert same == "True" and height == len(range(0, _BIG, 7))


_ID_LIKE = st.one_of(st.none(), st.text(alphabet="0123456789X ", min_size=15, max_size=19),
                     st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True))


@given(st.lists(_ID_LIKE, max_size=40), st.integers(min_value=1, max_value=8))
def test_few_ids_codes_are_those_of_ids_code_however_often_asked(texts: list[str | None], bound: int) -> None:
    from engine import ids

    keyed_module._CODE_OF.clear()
    original = keyed_module._CODE_OF_MAX
    keyed_module._CODE_OF_MAX = bound  # remembered codes dropped as often as every call
    try:
        for _ in range(3):
            codes = codes_of(texts)
            expected = sorted({code for text in texts if (code := ids.code(text)) is not None})
            assert codes.values.tolist() == expected
            assert [ids.code(text) for text in codes.texts] == expected
        assert len(keyed_module._CODE_OF) <= max(bound, 1)
    finally:
        keyed_module._CODE_OF_MAX = original
