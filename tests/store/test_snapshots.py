"""Snapshots: validated once, kept as Parquet, registered; the same file twice is a no-op."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from engine import ids
from engine.errors import InputError, SelectionError
from store import snapshots
from store.snapshots import held, ingest, latest, scan

from .conftest import AS_OF


def person(first17: str) -> str:
    return first17 + ids.check_char(first17)


A = person("32030219800101002")
B = person("11010519491231003")
FULL_WIDTH_A = A.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))


def write_csv(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_a_snapshot_is_normalized_once_and_kept_as_parquet(store, tmp_path):
    # Chinese headers, GBK, a full-width ID and a 15-digit legacy one: normalized at ingest.
    source = write_csv(tmp_path / "deaths.csv",
                       f"身份证号,姓名,死亡日期\n{FULL_WIDTH_A},张三,2026/03/15\n320302800101001,李四,20260401\n",
                       "gbk")
    done = ingest(store, "deaths", source, AS_OF)
    assert done.new and done.snapshot.rows == 2 and done.snapshot.rejects == 0
    frame = scan(store, done.snapshot).collect()
    assert frame["death_date"].dtype == pl.Date
    assert frame["id_number"].str.len_chars().to_list() == [18, 18]
    assert (store.settings.data_dir / done.snapshot.path).suffix == ".parquet"
    assert len(done.snapshot.file_hash) == 64 and done.snapshot.received_at.tzinfo is not None


def test_the_same_file_twice_is_a_no_op(store, tmp_path):
    source = write_csv(tmp_path / "deaths.csv", f"id_number,name,death_date\n{B},王五,2026-01-02\n")
    first = ingest(store, "deaths", source, AS_OF)
    again = ingest(store, "deaths", source, date(2026, 7, 31))
    assert not again.new and again.snapshot.id == first.snapshot.id
    with store.read() as session:
        assert [s.id for s in latest(session).values()] == [first.snapshot.id]
    # the Parquet lost from the data directory is made again from the file, still no new snapshot
    (store.settings.data_dir / first.snapshot.path).unlink()
    assert not ingest(store, "deaths", source, AS_OF).new
    assert scan(store, first.snapshot).collect().height == 1


def test_a_source_is_also_kept_keyed_by_id_and_made_again_when_lost(store, deliver, city):
    done = deliver("hukou", city.sources["hukou"])
    parquet = store.settings.data_dir / done.snapshot.path
    keyed_file = parquet.with_suffix(".keyed.arrow")
    assert keyed_file.exists()
    deliver("roll", city.roll)
    assert not (store.settings.data_dir / latest_path(store, "roll")).with_suffix(".keyed.arrow").exists()  # read whole

    frame = scan(store, done.snapshot).collect()
    some = frame["id_number"].head(5).to_list()
    expected = frame.filter(pl.col("id_number").is_in(some)).select("id_number", "name", "region_code")
    def found(keyed):
        return keyed.rows(some).select(expected.columns).sort("id_number")
    assert found(snapshots.keyed(store, done.snapshot)).equals(expected.sort("id_number"))
    assert keyed_file.stat().st_size > 0
    for damage in ("lost", "cut short"):  # a data directory restored without it, a disk full mid-write
        if damage == "lost":
            keyed_file.unlink()
        else:
            keyed_file.write_bytes(keyed_file.read_bytes()[:100])
        assert found(snapshots.keyed(store, done.snapshot)).equals(expected.sort("id_number"))
        assert keyed_file.stat().st_size > 100


def test_a_large_delivery_is_read_in_pieces_into_the_same_snapshot(store, tmp_path, monkeypatch, city):
    """Read a piece at a time (engine.pieces; here pieces of 4 kB): the same rows, rejects,
    problems and keyed file as the file read whole."""
    from engine import loaders, pieces

    text = city.sources["hukou"].write_csv()
    lines = text.splitlines()
    lines[5] = "123," + lines[5].split(",", 1)[1]  # a bad ID in the first piece, another further on
    lines[-3] = "456," + lines[-3].split(",", 1)[1]
    source = write_csv(tmp_path / "hukou.csv", "\n".join(lines) + "\n", "gb18030")
    whole = loaders.load(source, "hukou", AS_OF)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 4096)
    assert len(list(pieces.read_pieces(source))) > 3
    done = ingest(store, "hukou", source, AS_OF)
    assert (done.snapshot.rows, done.snapshot.rejects) == (whole.frame.height, 2)
    assert done.problems == whole.problems and {p.row for p in done.problems} == {6, len(lines) - 2}
    assert scan(store, done.snapshot).collect().equals(whole.frame)
    assert pl.read_csv(done.rejects_file)["row"].to_list() == [6, len(lines) - 2]
    some = whole.frame["id_number"].gather([0, 50, whole.frame.height - 1]).to_list()
    held_keyed = snapshots.keyed(store, done.snapshot).rows(some).select("id_number", "name").sort("id_number")
    assert held_keyed.equals(whole.frame.filter(pl.col("id_number").is_in(some)).select("id_number", "name")
                             .sort("id_number"))


def latest_path(store, key: str) -> str:
    with store.read() as session:
        return latest(session)[key].path


def test_rejected_rows_are_reported_and_kept_beside_the_snapshot(store, tmp_path):
    source = write_csv(tmp_path / "deaths.csv",
                       f"id_number,name,death_date\n{B},王五,2026-01-02\n123,赵六,2026-01-02\n"
                       f"{B},王五,not a date\n")
    done = ingest(store, "deaths", source, AS_OF)
    assert done.snapshot.rows == 1 and done.snapshot.rejects == 2
    assert {p.row for p in done.problems} == {3, 4} and all(p.file == "deaths.csv" for p in done.problems)
    assert done.rejects_file is not None and done.rejects_file.exists()
    rejects = pl.read_csv(done.rejects_file)
    assert rejects["row"].to_list() == [3, 4]


def test_an_unusable_file_keeps_nothing(store, tmp_path):
    source = write_csv(tmp_path / "vehicles.csv", "foo,bar\n1,2\n")
    with pytest.raises(InputError) as error:
        ingest(store, "vehicles", source, AS_OF)
    assert "vehicles.csv" in str(error.value)
    with store.read() as session:
        assert latest(session) == {}
    with pytest.raises(SelectionError, match="unknown snapshot key"):
        ingest(store, "weather", source, AS_OF)


def test_latest_is_by_snapshot_date_then_arrival(store, deliver, city):
    old = deliver("deposits", city.sources["deposits"], date(2026, 1, 1))
    new = deliver("deposits", city.sources["deposits"].head(10), date(2026, 6, 1))
    late_old = deliver("deposits", city.sources["deposits"].head(5), date(2025, 12, 1))  # a late delivery of old data
    with store.read() as session:
        assert latest(session)["deposits"].id == new.snapshot.id
        assert latest(session, as_of=date(2026, 3, 1))["deposits"].id == old.snapshot.id
    assert late_old.new


def test_held_says_how_old_each_source_is(store, deliver, city):
    deliver("roll", city.roll, date(2026, 6, 30))
    deliver("vehicles", city.sources["vehicles"], date(2026, 1, 31))
    table = {r["key"]: r for r in held(store, date(2026, 7, 15)).iter_rows(named=True)}
    assert list(table) == list(snapshots.KEYS)
    assert table["roll"]["state"] == "current" and table["roll"]["age_days"] == 15
    assert table["vehicles"]["state"] == "stale" and table["vehicles"]["cadence"] == "quarterly"
    assert table["deposits"]["state"] == "missing" and table["deposits"]["snapshot_id"] is None
