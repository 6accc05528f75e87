"""engine.files: real files on disk → tables of strings."""

from __future__ import annotations

import re
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from engine import files
from engine.errors import FileUnreadable, SchemaError

VECTOR = "11010519491231002X"


def _all_text(df: pl.DataFrame) -> bool:
    return all(dtype == pl.String for dtype in df.schema.values())


# ---- CSV ------------------------------------------------------------------------------------


def test_gbk_csv_with_chinese_headers(tmp_path: Path) -> None:
    path = tmp_path / "roll.csv"
    text = " 身份证号 ,姓名,行政区划代码,备注\n" f"{VECTOR},张三,320302,007\n" "00123,李四,320302,\n"
    path.write_bytes(text.encode("gbk"))
    df = files.read_table(path)
    assert df.columns == ["身份证号", "姓名", "行政区划代码", "备注"]  # trimmed
    assert _all_text(df)
    assert df.row(0) == (VECTOR, "张三", "320302", "007")  # leading zeros kept: never numbers
    assert df.row(1)[0] == "00123"


def test_gb18030_only_characters(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("姓名\n𠀀𡃁\n".encode("gb18030"))  # outside GBK, inside GB18030
    assert files.read_table(path).item() == "𠀀𡃁"


def test_utf8_bom_csv(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "id_number,name\n1,王五\n".encode())
    df = files.read_table(path)
    assert df.columns == ["id_number", "name"]
    assert df.row(0) == ("1", "王五")


def test_header_only_csv_is_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id_number,name\n", encoding="utf-8")
    df = files.read_table(path)
    assert df.columns == ["id_number", "name"] and df.height == 0 and _all_text(df)


def test_blank_lines_keep_their_rows_and_leading_blank_lines_shift_the_header(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("\n\nid_number,name\n1,a\n\n2,b\n", encoding="utf-8")
    df, first_row = files.read_located(path)
    assert first_row == 4  # header on line 3
    assert df.get_column("id_number").to_list() == ["1", None, "2"]


def test_tab_separated_text_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id_number\tname\n1\ta,b\n", encoding="utf-8")
    assert files.read_table(path).row(0) == ("1", "a,b")


def test_quote_inside_an_unquoted_field_is_text(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('id_number,name\n1,张"三\n2,"李,四"\n3,NA\n', encoding="utf-8")
    assert files.read_table(path).get_column("name").to_list() == ['张"三', "李,四", "NA"]


def test_blank_trailing_header_column_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b,\n1,2,\n", encoding="utf-8")
    assert files.read_table(path).columns == ["a", "b"]


# ---- XLSX -----------------------------------------------------------------------------------


def _workbook(path: Path, rows: list[list[object]], start_row: int = 1) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    for r, row in enumerate(rows, start_row):
        for c, value in enumerate(row, 1):
            ws.cell(r, c, value)
    wb.save(path)
    return path


def test_xlsx_cells_as_excel_shows_them(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path / "roll.xlsx",
        [
            ["身份证号", "纳入日期", "月保障金额", "备注"],
            [320303199001011234, date(2026, 3, 15), 800, "x"],  # an ID typed as a number
            ["320303199001011008", datetime(2026, 3, 15, 8, 30), 12.5, None],  # the same as text
            [VECTOR, "2026/03/01", 0, 3.2e17],
        ],
    )
    df = files.read_table(path)
    assert _all_text(df)
    assert df.columns == ["身份证号", "纳入日期", "月保障金额", "备注"]
    ids_, dates, amounts, notes = (df.get_column(c).to_list() for c in df.columns)
    assert ids_ == ["320303199001011000", "320303199001011008", VECTOR]  # Excel's 15 digits
    assert dates == ["2026-03-15", "2026-03-15 08:30:00", "2026/03/01"]
    assert amounts == ["800", "12.5", "0"]  # no trailing ".0"
    assert notes == ["x", None, "320000000000000000"]


def test_xlsx_header_below_blank_rows(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "x.xlsx", [["id_number", "name"], ["1", "a"]], start_row=3)
    df, first_row = files.read_located(path)
    assert df.columns == ["id_number", "name"] and first_row == 4


def test_xlsx_first_sheet_only(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["name"])
    wb.active.append(["first"])
    other = wb.create_sheet("other")
    other.append(["name"])
    other.append(["second"])
    wb.save(path)
    assert files.read_table(path).get_column("name").to_list() == ["first"]


def _no_sheet_workbook(path: Path) -> Path:
    """A well-formed workbook whose workbook.xml lists no sheet (openpyxl refuses to save one)."""
    source = path.with_suffix(".full.xlsx")
    openpyxl.Workbook().save(source)
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "xl/workbook.xml":
                data = re.sub(rb"<sheets>.*</sheets>", b"<sheets/>", data)
            zout.writestr(name, data)
    return path


# ---- Parquet --------------------------------------------------------------------------------


def test_parquet_cast_to_text(tmp_path: Path) -> None:
    path = tmp_path / "deaths.parquet"
    pl.DataFrame(
        {
            " id_number ": [VECTOR, None],
            "death_date": [date(2026, 3, 15), None],
            "stamp": [datetime(2026, 3, 15), datetime(2026, 3, 15, 9, 5)],
            "amount": [800.0, 12.5],
            "count": [3, None],
            "flag": [True, False],
        }
    ).write_parquet(path)
    df = files.read_table(path)
    assert _all_text(df)
    assert df.columns == ["id_number", "death_date", "stamp", "amount", "count", "flag"]
    assert df.row(0) == (VECTOR, "2026-03-15", "2026-03-15", "800", "3", "true")
    assert df.row(1) == (None, None, "2026-03-15 09:05:00", "12.5", None, "false")


# ---- bad inputs -----------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_FILES = [
    ("empty.csv", lambda p: _write(p, b""), "0 bytes"),
    ("empty.xlsx", lambda p: _write(p, b""), "0 bytes"),
    ("empty.parquet", lambda p: _write(p, b""), "0 bytes"),
    ("blank.csv", lambda p: _write(p, b"\xef\xbb\xbf\n\n"), "no header"),
    ("broken.xls", lambda p: _write(p, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600), "cannot read the XLS"),
    ("roll.txt", lambda p: _write(p, b"id_number\n1\n"), "unsupported"),
    ("nosheet.xlsx", _no_sheet_workbook, "no sheet"),
    ("text.xlsx", lambda p: _write(p, b"id_number,name\n1,a\n"), "not an XLSX"),
    ("corrupt.xlsx", lambda p: _write(p, b"PK\x03\x04" + b"\x00" * 40), "not an XLSX"),
    ("emptysheet.xlsx", lambda p: (openpyxl.Workbook().save(p), p)[1], "sheet is empty"),
    ("broken.parquet", lambda p: _write(p, b"PAR1 this is not parquet PAR1"), "Parquet"),
]


def test_a_row_too_wide_keeps_its_extra_cells_apart(tmp_path: Path) -> None:
    """engine.loaders rejects such a row alone (a comma typed in a cell); empty extra cells are
    a spreadsheet's trailing commas, and no extra."""
    path = _write(tmp_path / "ragged.csv", "a,b\n1,2\n3,4,,\n5,\"6\",7,8\n,\n".encode())
    df = files.read_table(path)
    assert df.columns == ["a", "b", files.EXTRA]
    assert df.rows() == [("1", "2", None), ("3", "4", None), ("5", "6", "7,8"), (None, None, None)]
    assert files.read_table(_write(tmp_path / "trailing.csv", b"a,b\n1,2,,\n")).columns == ["a", "b"]


@pytest.mark.parametrize(("name", "make", "fragment"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_unreadable_files(tmp_path: Path, name: str, make, fragment: str) -> None:  # noqa: ANN001
    path = make(tmp_path / name)
    with pytest.raises(FileUnreadable) as caught:
        files.read_table(path)
    text = str(caught.value)
    assert name in text and fragment in text
    assert caught.value.problems and caught.value.problems[0].file == name


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileUnreadable, match="not found"):
        files.read_table(tmp_path / "nothing.csv")


def test_undecodable_bytes_name_line_and_offset(tmp_path: Path) -> None:
    path = _write(tmp_path / "hukou.csv", "id_number,name\n1,张三\n".encode() + b"2,\x80\x80\n")
    with pytest.raises(FileUnreadable) as caught:
        files.read_table(path)
    problem = caught.value.problems[0]
    offset = len("id_number,name\n1,张三\n".encode()) + 2
    assert problem.file == "hukou.csv" and problem.row == 3
    assert f"byte offset {offset}" in problem.message and "0x80" in problem.message
    assert "hukou.csv" in str(caught.value) and "row 3" in str(caught.value)


def _dup_csv(p: Path) -> Path:
    return _write(p, "身份证号,姓名, 姓名 \n1,a,b\n".encode())


def _dup_xlsx(p: Path) -> Path:
    return _workbook(p, [["身份证号", "姓名", "姓名"], ["1", "a", "b"]])


def _dup_parquet(p: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([["1"], ["a"], ["b"]], names=["身份证号", "姓名", "姓名"]), p)
    return p


@pytest.mark.parametrize(
    ("name", "make"),
    [("dup.csv", _dup_csv), ("dup.xlsx", _dup_xlsx), ("dup.parquet", _dup_parquet)],
)
def test_duplicated_header(tmp_path: Path, name: str, make) -> None:  # noqa: ANN001
    with pytest.raises(SchemaError) as caught:
        files.read_table(make(tmp_path / name))
    (problem,) = caught.value.problems
    assert problem.file == name and problem.column == "姓名"
    assert "columns 2 (B), 3 (C)" in problem.message


# ---- find_sources ---------------------------------------------------------------------------


def test_find_sources(tmp_path: Path) -> None:
    for name in ["hukou.csv", "Deaths.XLSX", "vehicles.parquet", "notes.csv", "roll.csv", "hukou.bak"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "property.csv").mkdir()
    found = files.find_sources(tmp_path)
    assert found == {
        "hukou": tmp_path / "hukou.csv",
        "deaths": tmp_path / "Deaths.XLSX",
        "vehicles": tmp_path / "vehicles.parquet",
    }


def test_find_sources_two_files_for_one_key(tmp_path: Path) -> None:
    (tmp_path / "hukou.csv").write_bytes(b"x")
    (tmp_path / "hukou.xlsx").write_bytes(b"x")
    with pytest.raises(SchemaError, match="hukou.csv, hukou.xlsx"):
        files.find_sources(tmp_path)


def test_find_sources_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileUnreadable, match="not found"):
        files.find_sources(tmp_path / "absent")


def test_to_text_of_in_memory_frames() -> None:
    df = pl.DataFrame({"d": [date(2026, 1, 2)], "f": [3.20303199001011e17], "i": [5]})
    assert files.to_text(df).row(0) == ("2026-01-02", "320303199001011000", "5")


def test_parquet_numbers_kept_as_they_are_on_request(tmp_path: Path) -> None:
    """engine.loaders reads a Parquet file with numbers=True: its integer and float columns stay
    numbers (the loader decides which to read as text), the rest is text as ever; a blank
    header over numbers is kept while it holds any, as over text."""
    path = tmp_path / "deposits.parquet"
    pl.DataFrame({
        "id_number": [VECTOR, None], "balance": [800.0, 12.5], "count": [3, None],
        "day": [date(2026, 3, 15), None], "": [None, 7.0], " ": pl.Series([None, None], dtype=pl.Float64),
    }).write_parquet(path)
    df, first_row = files.read_located(path, numbers=True)
    assert first_row == 2
    assert df.schema == pl.Schema({"id_number": pl.String, "balance": pl.Float64, "count": pl.Int64,
                                   "day": pl.String, "column_5": pl.Float64})
    assert df.row(0) == (VECTOR, 800.0, 3, "2026-03-15", None)
    assert _all_text(files.read_located(path)[0])  # by default: text, as read_table gives


# ---- a title above the header ---------------------------------------------------------------

ROLL_HEADER = ["家庭编号", "姓名", "身份证号", "月保障金额"]
ROLL_ROW = ["320303000000123", "张三", VECTOR, "880"]


def _names_a_roll_column(cells: object) -> bool:
    from engine.headers import header_test

    return header_test("roll")(cells)  # type: ignore[arg-type]


def test_xlsx_title_rows_above_the_header_are_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "roll.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["云龙区2026年6月城乡低保名册"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=4)
    ws.append(["填报单位：云龙区民政局", None, "填报日期：2026-07-01"])
    ws.append([])
    ws.append(ROLL_HEADER)
    ws.append(ROLL_ROW)
    wb.save(path)
    df, first_row = files.read_located(path, is_header=_names_a_roll_column)
    assert df.columns == ROLL_HEADER and df.rows() == [tuple(ROLL_ROW)] and first_row == 5
    # Without the dataset's test, the first row that is not blank is the header, as ever.
    assert files.read_located(path)[0].columns[0] == "云龙区2026年6月城乡低保名册"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_title_lines_above_the_header_are_passed_over(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "roll.csv"
    lines = ["云龙区2026年6月城乡低保名册,,,", "", "填报单位：云龙区民政局,,填报日期：2026-07-01,",
             ",".join(ROLL_HEADER), ",".join(ROLL_ROW), ",".join(ROLL_ROW)]
    path.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
    df, first_row = files.read_located(path, is_header=_names_a_roll_column)
    assert df.columns == ROLL_HEADER and df.rows() == [tuple(ROLL_ROW)] * 2 and first_row == 5


def test_a_header_that_names_no_column_stays_the_first_row(tmp_path: Path) -> None:
    # Nothing below names a roll column either: the first row is the header, for engine.headers
    # to say what is wrong with it.
    path = tmp_path / "roll.csv"
    path.write_text("ID,Name\n" + f"{VECTOR},张三\n" * 3, encoding="utf-8")
    df, first_row = files.read_located(path, is_header=_names_a_roll_column)
    assert df.columns == ["ID", "Name"] and first_row == 2


def test_the_header_is_looked_for_only_in_the_first_rows(tmp_path: Path) -> None:
    def written(titles: int) -> Path:
        path = tmp_path / f"roll{titles}.csv"
        text = "".join(f"说明第{n}行\n" for n in range(titles)) + ",".join(ROLL_HEADER) + "\n" + ",".join(ROLL_ROW)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    assert files.read_located(written(files.TITLE_ROWS - 1), is_header=_names_a_roll_column)[1] == files.TITLE_ROWS + 1
    # Too far down: the first line stays the header (engine.headers then names the roll's
    # columns it lacks), and the real one is a row too wide for it.
    df, first_row = files.read_located(written(files.TITLE_ROWS), is_header=_names_a_roll_column)
    assert df.columns == ["说明第0行", files.EXTRA] and first_row == 2
    assert df.get_column(files.EXTRA)[files.TITLE_ROWS - 1] == ",".join(ROLL_HEADER[1:])
