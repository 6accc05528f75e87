"""engine.workbooks: Excel workbooks, and what systems export under the name .xls, read through
engine.files as every table is."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from engine import files
from engine.errors import FileUnreadable, SchemaError

from .test_files import ROLL_HEADER, ROLL_ROW, VECTOR, _names_a_roll_column, _workbook


# ---- .xls: what systems export under that name ------------------------------------------------

# Excel 97-2003 (BIFF8), written once with xlwt 1.3.0 (nothing in the project writes .xls): a
# title, the header, a string ID, an ID typed as a number, a date cell and a date with dots.
LEGACY_ROLL = Path(__file__).parent / "data" / "roll.xls"


def test_an_excel_97_workbook_reads_as_an_xlsx_would(tmp_path: Path) -> None:
    df, first_row = files.read_located(LEGACY_ROLL, is_header=_names_a_roll_column)
    assert first_row == 3 and df.columns[:3] == ["救助类别", "家庭编号", "身份证号"]
    assert df.get_column("身份证号").to_list()[:2] == [VECTOR, "320303198001011000"]  # Excel's 15 digits
    assert df.get_column("纳入日期").to_list()[:2] == ["2021-03-01", "2021.3.1"]
    assert df.get_column("月保障金额").to_list()[:2] == ["800", "800.5"]


def test_an_xlsx_named_xls_is_read_as_xlsx(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "roll.xls", [ROLL_HEADER, ROLL_ROW])
    assert files.read_table(path).rows() == [tuple(ROLL_ROW)]


def test_text_named_xls_is_read_as_csv_and_a_web_page_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    text = tmp_path / "roll.xls"
    text.write_bytes(("\t".join(ROLL_HEADER) + "\n" + "\t".join(ROLL_ROW) + "\n").encode("gb18030"))
    assert files.read_table(text).rows() == [tuple(ROLL_ROW)]
    page = tmp_path / "export.xls"
    page.write_text('<html><head><meta charset="utf-8"></head><body><table><tr><td>身份证号</td></tr></table>',
                    encoding="utf-8")
    with pytest.raises(FileUnreadable) as raised:
        files.read_table(page)
    assert "save it as .xlsx" in raised.value.problems[0].message


@pytest.mark.parametrize("first", ["instructions", "empty"])
def test_when_the_data_is_on_a_later_sheet_the_error_says_which(tmp_path: Path, first: str) -> None:
    path = tmp_path / "roll.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "填表说明"
    if first == "instructions":
        wb.active.append(["1. 身份证号请设为文本格式"])
    data = wb.create_sheet("名册")
    data.append(ROLL_HEADER)
    data.append(ROLL_ROW)
    wb.save(path)
    with pytest.raises(SchemaError) as raised:
        files.read_table(path, is_header=_names_a_roll_column)
    assert "sheet 2, '名册': move it first" in raised.value.problems[0].message
    # Without a dataset to look for, the first sheet is read as ever.
    if first == "instructions":
        assert files.read_table(path).columns == ["1. 身份证号请设为文本格式"]
    else:
        with pytest.raises(FileUnreadable, match="sheet is empty"):
            files.read_table(path)
