"""engine.pieces: a file read a piece at a time reads as it does whole."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ids, loaders, pieces
from engine.errors import FileUnreadable, SchemaError
from schemas import SOURCES

AS_OF = date(2026, 6, 30)
HEADER = "身份证号,姓名,行政区划代码,状态,状态日期\n"


def _id(n: int) -> str:
    first17 = f"32030219{60 + n % 40:02d}0101{n % 1000:03d}"
    return first17 + ids.check_char(first17)


def _hukou_text(rows: int) -> str:
    """A hukou delivery with what real ones carry: blank lines, a quoted cell over two lines, a
    quote inside an unquoted cell, bad IDs and dates, Chinese codes, an ID typed as 15 digits."""
    lines = []
    for n in range(rows):
        pid = _id(n)
        if n % 13 == 0:
            pid = pid[:17] + ("0" if pid[17] != "0" else "1")  # check character wrong
        if n % 29 == 0:
            pid = pid[:6] + pid[8:17]  # legacy 15 digits: kept with a warning
        name = '"王\n五"' if n % 31 == 0 else ("张\"三" if n % 37 == 0 else f"李{n % 7}")
        status = "死亡" if n % 11 == 0 else "normal"
        when = "2025-13-01" if n % 17 == 0 else ("2025-03-01" if n % 11 == 0 else "")
        lines.append(f"{pid},{name},320302001{n % 12:03d},{status},{when}\n")
        if n % 19 == 0:
            lines.append("\n")
    return "\n\n" + HEADER + "".join(lines)


def _same(path: Path, key: str, piece_bytes: int) -> int:
    whole = loaders.load(path, key, AS_OF)
    parts = list(pieces.load_pieces(path, key, AS_OF, piece_bytes=piece_bytes))
    assert pl.concat([p.frame for p in parts]).equals(whole.frame)
    assert pl.concat([p.rejects for p in parts]).equals(whole.rejects)
    assert pieces.merged_problems([p.problems for p in parts], key, path.name) == whole.problems
    assert pieces.merged_problems([p.warnings for p in parts], key, path.name) == whole.warnings
    joined = pieces.load_joined(path, key, AS_OF, piece_bytes)
    assert (joined.key, joined.file) == (whole.key, whole.file)
    assert joined.frame.equals(whole.frame) and joined.rejects.equals(whole.rejects)
    assert (joined.problems, joined.warnings) == (whole.problems, whole.warnings)
    kept = whole.frame.columns[1:3]
    narrowed = pieces.load_joined(path, key, AS_OF, piece_bytes, columns=kept)
    assert narrowed.frame.equals(whole.frame.select(kept))
    return len(parts)


@pytest.fixture(scope="module")
def hukou_gb18030(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pieces") / "hukou.csv"
    path.write_bytes(_hukou_text(700).encode("gb18030"))
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(piece_bytes=st.integers(2_000, 40_000))
def test_a_csv_in_pieces_reads_as_it_does_whole(hukou_gb18030: Path, piece_bytes: int) -> None:
    """Rows, their numbers, rejects, problems and warnings: whatever the pieces' size (a quoted
    cell over two lines is never cut). Pieces of dozens of lines here: smaller ones below."""
    _same(hukou_gb18030, "hukou", piece_bytes)


@pytest.mark.parametrize("piece_bytes", [1, 45, 90])
def test_pieces_smaller_than_a_line_are_a_line_each(tmp_path: Path, piece_bytes: int) -> None:
    """A piece is at least one line, a quoted cell over two lines with it. (On a file of 120
    rows, which holds every case of the 700 above: each piece costs a reading, and with
    hypothesis's draw of 1 byte over 700 rows the test above took ~70 s.)"""
    path = tmp_path / "hukou.csv"
    path.write_bytes(_hukou_text(120).encode("gb18030"))
    assert _same(path, "hukou", piece_bytes) >= 50  # (of the file's 5.5 kB)


@pytest.mark.parametrize("piece_bytes", [200, 3_000, 1 << 20])
def test_a_csv_with_a_title_above_its_header_reads_in_pieces_as_it_does_whole(tmp_path: Path, piece_bytes: int) -> None:
    path = tmp_path / "hukou.csv"
    path.write_bytes(("2026年6月户籍人口,,,,\r\n\r\n户籍信息,,,,\r\n" + _hukou_text(120)).encode("gb18030"))
    assert _same(path, "hukou", piece_bytes) >= 1
    plain = tmp_path / "plain" / "hukou.csv"
    plain.parent.mkdir()
    plain.write_bytes(_hukou_text(120).encode("gb18030"))
    titled, untitled = loaders.load(path, "hukou", AS_OF), loaders.load(plain, "hukou", AS_OF)
    assert titled.frame.get_column("_row").to_list() == [n + 3 for n in untitled.frame.get_column("_row")]
    assert [(p.row, p.column) for p in titled.problems] == [(p.row + 3, p.column) for p in untitled.problems]


def test_pieces_are_made_and_problems_are_capped_across_them(tmp_path: Path) -> None:
    """More bad IDs than PROBLEM_CAP, spread over pieces: the first PROBLEM_CAP listed, the rest
    counted in one summary, as one reading does."""
    path = tmp_path / "deaths.csv"
    rows = [f"{_id(n)[:17]}{'0' if _id(n)[17] != '0' else '1'},张{n},2025-01-01" for n in range(2600)]
    path.write_text("身份证号,姓名,死亡日期\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert _same(path, "deaths", 8_000) > 5
    problems = pieces.merged_problems(
        [p.problems for p in pieces.load_pieces(path, "deaths", AS_OF, piece_bytes=8_000)], "deaths", path.name)
    assert len(problems) == loaders.PROBLEM_CAP + 1 and loaders.summarized(problems[-1]) == 2600 - loaders.PROBLEM_CAP


def test_a_parquet_in_pieces_reads_as_it_does_whole(tmp_path: Path) -> None:
    """Slices of as many rows as the piece's bytes hold written as CSV; a file of no more rows is
    read whole."""
    path = tmp_path / "vehicles.parquet"
    pl.DataFrame({
        "id_number": [_id(n) if n % 9 else "bad" for n in range(30_000)],
        "plate": [f"苏C{n:05d}" for n in range(30_000)],
        "vehicle_type": ["car" if n % 5 else "小型汽车" for n in range(30_000)],
        "purchase_price": [float(n) for n in range(30_000)],
        "": [None] * 30_000,  # a nameless empty column goes, as engine.files drops it
    }).write_parquet(path, row_group_size=5_000)
    width = pieces._csv_width(pl.read_parquet(path, n_rows=10_000))
    assert 30 <= width <= 50  # an ID (or "bad"), a plate, a type, a price and 5 separators
    assert _same(path, "vehicles", width * 7_000) == 5
    assert _same(path, "vehicles", width * 40_000) == 1


def test_the_encoding_is_settled_by_the_first_piece_with_other_than_ascii(tmp_path: Path) -> None:
    """ASCII pieces first, then GB18030: read as such; a later byte that is not GB18030 is named
    by its line and byte offset in the file."""
    path = tmp_path / "deaths.csv"
    head = "id_number,name,death_date\n" + "".join(f"{_id(n)},Li,2025-01-01\n" for n in range(200))
    path.write_bytes(head.encode() + "".join(f"{_id(n)},王五,2025-01-01\n" for n in range(200)).encode("gb18030"))
    assert _same(path, "deaths", 1_000) > 4
    bad = head.encode() + f"{_id(1)},王五,2025-01-01\n".encode("gb18030") * 100 + b"\xff\xff,x,y\n"
    path.write_bytes(bad)
    with pytest.raises(FileUnreadable) as raised:
        list(pieces.load_pieces(path, "deaths", AS_OF, piece_bytes=1_000))
    problem = raised.value.problems[0]
    assert problem.row == 302 and f"byte offset {len(bad) - 7}" in problem.message and "GB18030" in problem.message


@pytest.mark.parametrize("piece_bytes", [2_000, 1 << 20])
def test_a_row_with_too_many_fields_is_rejected_alone_and_named_by_its_line(tmp_path: Path, piece_bytes: int) -> None:
    """Its cells are not where the header says (a comma typed inside a name): that row is
    rejected, not the file; trailing empty fields (a spreadsheet's commas) are no extra."""
    path = tmp_path / "deaths.csv"
    rows = [f"{_id(n)},张三,2025-01-01" for n in range(300)]
    rows[250] += ",extra,cells"
    rows[100] += ",,"
    path.write_text("\n身份证号,姓名,死亡日期\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert _same(path, "deaths", piece_bytes) >= 1
    whole = loaders.load(path, "deaths", AS_OF)
    assert whole.rejects.get_column("_row").to_list() == [253]  # a blank line, the header, then rows 0..250
    assert [(p.row, p.value) for p in whole.problems] == [(253, "extra,cells")]
    assert whole.frame.height == 299 and 103 in whole.frame.get_column("_row").to_list()


@pytest.mark.parametrize("text", ["身份证号,姓名,死亡日期\n", "身份证号,姓名,死亡日期", "\n\n身份证号,姓名,死亡日期\r\n"])
def test_a_header_alone_is_one_empty_piece(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deaths.csv"
    path.write_text(text, encoding="utf-8")
    assert _same(path, "deaths", 100) == 1


def test_a_parquet_of_no_rows_is_one_empty_piece(tmp_path: Path) -> None:
    path = tmp_path / "deaths.parquet"
    pl.DataFrame(schema={"身份证号": pl.String, "死亡日期": pl.Date}).write_parquet(path)
    assert _same(path, "deaths", 100) == 1


def test_header_problems_are_raised_before_any_piece(tmp_path: Path) -> None:
    path = tmp_path / "deaths.csv"
    path.write_text("身份证号,身份证号,死亡日期\n" + f"{_id(1)},{_id(1)},2025-01-01\n" * 50, encoding="utf-8")
    with pytest.raises(SchemaError):
        next(pieces.load_pieces(path, "deaths", AS_OF, piece_bytes=100))
    path.write_text("姓名,死亡日期\n" + "张三,2025-01-01\n" * 50, encoding="utf-8")
    with pytest.raises(SchemaError, match="id_number"):
        next(pieces.load_pieces(path, "deaths", AS_OF, piece_bytes=100))


def test_a_run_from_files_in_pieces_gives_what_it_gives_read_whole(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """engine.batch.run_files reads each source a piece at a time (RUN_PIECE_BYTES) and keeps
    its contract's columns: a city of mixed formats with dirty IDs, read in pieces of ~4 KB,
    gives the flags, rejects, problems and warnings it gives with every file one piece."""
    from engine import batch
    from fixtures.generator import generate
    from fixtures.writing import write

    generated = generate(300, seed=5, case_fraction=1.0)
    paths = write(generated, tmp_path, formats="mixed")
    with open(paths["sources"] / "deaths.csv", "a", encoding="utf-8") as deaths:  # rows to reject, to warn of
        deaths.write("".join(f"{_id(n)[:17]}0,张{n},2025-13-01\n" for n in range(1, 40)))

    def run_files() -> batch.FileRun:
        return batch.run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])

    whole = run_files()
    read: list[int] = []
    joined = pieces.load_joined
    monkeypatch.setattr(batch, "RUN_PIECE_BYTES", 4_000)
    monkeypatch.setattr(pieces, "load_joined", lambda *args, **kw: (read.append(1), joined(*args, **kw))[1])
    in_pieces = run_files()
    assert len(read) == len(in_pieces.loaded) - 1  # every source through load_joined
    assert max(len(list(pieces.read_pieces(p, 4_000))) for p in paths["sources"].iterdir()) > 3
    assert in_pieces.result.flags.height > 0 and in_pieces.result.flags.equals(whole.result.flags)
    assert in_pieces.rejects.height > 0 and in_pieces.rejects.equals(whole.rejects)
    assert (in_pieces.problems, in_pieces.warnings) == (whole.problems, whole.warnings)
    for key, item in in_pieces.loaded.items():
        if key != "roll":
            assert item.frame.columns == list(SOURCES[key].names)
