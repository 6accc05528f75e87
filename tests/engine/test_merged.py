"""engine.merged: cells merged down a column are read as the value of every row they cover."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from engine import files, loaders, merged

AS_OF = date(2026, 6, 30)
HEADER = ["救助类别", "家庭编号", "身份证号", "姓名", "行政区划代码", "月保障金额", "与户主关系"]
MEMBERS = [
    ["低保", "320302000000001", "11010519491231002X", "张三", "320302001", 800, "户主"],
    ["低保", None, "320303198001011235", "李秀英", None, 800, "配偶"],
    ["低保", None, "32030319741011445X", "张五", None, 800, "子女"],
    ["特困", "320302000000002", "320302192701016981", "王六", "320302002", 900, "户主"],
]


def _roll(path: Path, merges: list[str], column: int = 1, styled_left: bool = False) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    if styled_left:  # formatted but empty cells left of the table: not where it starts
        ws.cell(1, 1).font = Font(bold=True)
    for r, row in enumerate([HEADER, *MEMBERS], 1):
        for c, value in enumerate(row, column):
            if value is not None:
                ws.cell(r, c, value)
    for ref in merges:
        ws.merge_cells(ref)
    wb.save(path)
    return path


def test_household_and_region_merged_down_are_read_for_every_member(tmp_path: Path) -> None:
    path = _roll(tmp_path / "roll.xlsx", ["B2:B4", "E2:E4"])
    loaded = loaders.load(path, "roll", AS_OF)
    assert loaded.ok, loaded.problems
    assert loaded.frame.get_column("household_id").to_list() == ["320302000000001"] * 3 + ["320302000000002"]
    assert loaded.frame.get_column("region_code").to_list() == ["320302001"] * 3 + ["320302002"]
    assert loaded.frame.get_column("_row").to_list() == [2, 3, 4, 5]


def test_merges_are_placed_by_where_the_table_starts(tmp_path: Path) -> None:
    # The table starts in column C, a formatted empty cell in A: the merge in D is household_id.
    path = _roll(tmp_path / "roll.xlsx", ["D2:D4", "G2:G4"], column=3, styled_left=True)
    frame = loaders.load(path, "roll", AS_OF).frame
    assert frame.get_column("household_id").to_list() == ["320302000000001"] * 3 + ["320302000000002"]
    assert frame.get_column("region_code").to_list() == ["320302001"] * 3 + ["320302002"]


def test_without_merges_the_empty_cells_stay_empty_and_are_named(tmp_path: Path) -> None:
    loaded = loaders.load(_roll(tmp_path / "roll.xlsx", []), "roll", AS_OF)
    assert {(p.row, p.column) for p in loaded.problems} == {(3, "household_id"), (4, "household_id"),
                                                           (3, "region_code"), (4, "region_code")}


def test_merges_across_columns_and_over_the_header_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "roll.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in [["家庭编号", "备注", "其他"], ["H1", "说明", None], [None, None, None], ["H2", "x", "y"]]:
        ws.append(row)
    ws.merge_cells("B2:C2")  # a note over two columns: not the second column's value
    ws.merge_cells("A1:A2")  # from the header down: not a value of the body
    wb.save(path)
    table = files.read_table(path)
    assert table.get_column("其他").to_list() == [None, None, "y"]
    assert table.get_column("家庭编号").to_list() == [None, None, "H2"]  # merging cleared H1
    assert merged.down_merges(path) == [(0, 0, 1)]


def test_the_table_is_placed_only_when_its_width_is_what_the_cells_span(tmp_path: Path) -> None:
    path = _roll(tmp_path / "roll.xlsx", ["D2:D4"], column=3, styled_left=True)
    assert merged.valued_columns(path, len(HEADER)) == (2, 2 + len(HEADER) - 1)
    assert merged.valued_columns(path, len(HEADER) + 1) is None  # then nothing is filled


# Excel 97-2003, written once with xlwt 1.3.0: 家庭编号 and 行政区划代码 merged down over each
# household's members (rows 3-5 and 6-7), the table from column B (A formatted, without a value).
LEGACY_MERGED = Path(__file__).parent / "data" / "merged.xls"


def test_an_excel_97_workbooks_merges_are_filled_down_too() -> None:
    loaded = loaders.load(LEGACY_MERGED, "roll", AS_OF)
    assert loaded.ok, loaded.problems
    assert loaded.frame.get_column("household_id").to_list() == ["320302000000001"] * 3 + ["320302000000002"] * 2
    assert loaded.frame.get_column("region_code").to_list() == ["320302001"] * 3 + ["320302002"] * 2
    assert sorted(merged.in_xls(LEGACY_MERGED, 6)[0]) == [(2, 2, 4), (2, 5, 6), (5, 2, 4), (5, 5, 6)]
    assert merged.in_xls(LEGACY_MERGED, 6)[1] == 1  # column B
    assert merged.in_xls(LEGACY_MERGED, 7)[1] is None  # a width that does not agree: nothing placed


def test_what_is_not_an_excel_97_workbook_has_no_merges(tmp_path: Path) -> None:
    path = tmp_path / "roll.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    assert merged.in_xls(path, 3) == ([], None)
    assert merged.in_xls(_roll(tmp_path / "roll.xlsx", ["B2:B4"]), 7) == ([], None)


def test_column_letters() -> None:
    assert [merged.column_index(letters) for letters in ("A", "Z", "AA", "AZ", "XFD")] == [0, 25, 26, 51, 16383]


@st.composite
def sheets(draw: st.DrawFn) -> tuple[list[list[str | None]], list[tuple[int, int, int]], int, int]:
    """A grid of text with some cells empty, merges down its body's columns (not overlapping),
    and where it starts on the sheet."""
    width, height = draw(st.integers(1, 5)), draw(st.integers(1, 12))
    grid = [[f"h{c}" for c in range(width)]]
    grid += [[draw(st.sampled_from([None, f"v{r}.{c}"])) for c in range(width)] for r in range(1, height + 1)]
    merges = []
    for c in range(width):
        r = 1
        while r <= height:
            length = draw(st.integers(0, 3))
            if length >= 1 and r + length <= height and draw(st.booleans()):
                grid[r][c] = grid[r][c] or f"m{r}.{c}"
                for below in range(r + 1, r + length + 1):
                    grid[below][c] = None  # Excel keeps the top cell's value only
                merges.append((c, r, r + length))
                r += length + 1
            else:
                r += 1
    for c in range(width):  # every column holds a value somewhere below its header: the table's width
        if all(grid[r][c] is None for r in range(1, height + 1)):
            grid[height][c] = f"v{height}.{c}"
            merges = [m for m in merges if not (m[0] == c and m[2] >= height)]
    return grid, merges, draw(st.integers(0, 3)), draw(st.integers(0, 2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sheets())
def test_every_cell_a_merge_covers_reads_as_its_top_cell(tmp_path: Path, sheet) -> None:
    grid, merges, left, top = sheet
    path = tmp_path / "sheet.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if value is not None:
                ws.cell(top + r + 1, left + c + 1, value)
    for c, first, last in merges:
        letter = get_column_letter(left + c + 1)
        ws.merge_cells(f"{letter}{top + first + 1}:{letter}{top + last + 1}")
    wb.save(path)
    expected = [row[:] for row in grid[1:]]
    for c, first, last in merges:
        for r in range(first + 1, last + 1):
            expected[r - 1][c] = grid[first][c]
    table, first_row = files.read_located(path)
    assert first_row == top + 2
    # The table ends at the last row holding a value of its own (a merge's value is its top row's).
    last = max(r for r in range(1, len(grid)) if any(v is not None for v in grid[r]))
    assert table.rows() == [tuple(row) for row in expected[:last]]
