"""engine.loaders: string tables → typed canonical frames, rejects and problems."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import cells, files, ids, loaders
from engine.errors import FileUnreadable, InputError, SchemaError

from . import test_ids

AS_OF = date(2026, 6, 30)
VECTOR = "11010519491231002X"
LEGACY15 = "110105491231002"  # VECTOR's 15-digit form: birth 1949-12-31, sequence 002
OTHER = "320302198001010017"
assert ids.is_valid(OTHER)

ROLL_HEADER = "救助类别,家庭编号,身份证号,姓名,行政区划代码,月保障金额,纳入日期"
ROLL_ROW = f"低保,H1,{VECTOR},张三,320302,800,2026-01-15"


def _csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _roll(tmp_path: Path, *rows: str, header: str = ROLL_HEADER) -> loaders.Loaded:
    return loaders.load(_csv(tmp_path / "roll.csv", [header, *rows]), "roll", AS_OF)


# ---- good input -----------------------------------------------------------------------------


def test_roll_from_gbk_csv_typed_and_complete(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "roll.csv",
        [
            ROLL_HEADER + ",与户主关系,备注",
            ROLL_ROW + ",户主,first",
            f"DIBAO,H1, {LEGACY15} ,李四,320302000000,\"1,234.50\",2026/1/5,配偶,",
            f"特困,H2,{VECTOR.lower()},王五,320302,0,20260105,,",
        ],
        encoding="gbk",
    )
    loaded = loaders.load(path, "roll", AS_OF)
    assert loaded.ok and not loaded.problems and loaded.rejects.height == 0
    frame = loaded.frame
    assert frame.columns == [
        "_row", "program", "household_id", "id_number", "name", "region_code",
        "benefit_monthly", "relation", "declared_income_monthly", "enrolled_on",
        "id_number_raw", "id_valid", "id_method", "备注",
    ]  # fmt: skip
    assert frame.schema["_row"] == pl.Int64
    assert frame.schema["benefit_monthly"] == pl.Float64
    assert frame.schema["enrolled_on"] == pl.Date
    assert frame.schema["id_valid"] == pl.Boolean
    assert frame.get_column("_row").to_list() == [2, 3, 4]
    assert frame.get_column("program").to_list() == ["dibao", "dibao", "tekun"]
    assert frame.get_column("id_number").to_list() == [VECTOR] * 3
    assert frame.get_column("id_number_raw").to_list() == [VECTOR, f" {LEGACY15} ", VECTOR.lower()]
    assert frame.get_column("id_method").to_list() == ["exact", "legacy15", "exact"]
    assert frame.get_column("id_valid").to_list() == [True] * 3
    assert frame.get_column("benefit_monthly").to_list() == [800.0, 1234.5, 0.0]
    assert frame.get_column("enrolled_on").to_list() == [
        date(2026, 1, 15), date(2026, 1, 5), date(2026, 1, 5)
    ]  # fmt: skip
    assert frame.get_column("declared_income_monthly").to_list() == [0.0] * 3  # absent: default
    assert frame.get_column("relation").to_list() == ["户主", "配偶", None]
    assert frame.get_column("备注").to_list() == ["first", None, None]  # carried along


def test_xlsx_roll_with_date_cell_and_numeric_id(tmp_path: Path) -> None:
    path = tmp_path / "roll.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["program", "household_id", "id_number", "name", "region_code", "benefit_monthly", "enrolled_on"])
    ws.append(["dibao", "H1", VECTOR, "a", 320302, 800, date(2026, 3, 15)])
    ws.append(["dibao", "H1", 320303199001011234, "b", 320302, 800.0, datetime(2026, 3, 1)])
    wb.save(path)
    loaded = loaders.load(path, "roll", AS_OF)
    assert loaded.ok
    assert loaded.frame.get_column("enrolled_on").to_list() == [date(2026, 3, 15), date(2026, 3, 1)]
    assert loaded.frame.get_column("region_code").to_list() == ["320302", "320302"]
    # The roll keeps an invalid ID (id_invalid reports it); the loader only warns.
    assert loaded.frame.get_column("id_valid").to_list() == [True, False]
    (warning,) = loaded.warnings
    assert (warning.file, warning.row, warning.column) == ("roll.xlsx", 3, "id_number")
    assert warning.value == "320303199001011000" and "Excel" in warning.message


def test_xlsx_source_with_numeric_ids_rejects_them_naming_excel(tmp_path: Path) -> None:
    path = tmp_path / "deposits.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["身份证号", "存款余额"])
    wb.active.append([VECTOR, 100])
    wb.active.append([320303199001011234, 200.5])
    wb.save(path)
    loaded = loaders.load(path, "deposits", AS_OF)
    assert loaded.frame.get_column("balance").to_list() == [100.0]
    (problem,) = loaded.problems
    assert (problem.file, problem.row, problem.column) == ("deposits.xlsx", 3, "id_number")
    assert problem.value == "320303199001011000" and "Excel" in problem.message
    assert "Excel" in loaded.rejects.item(0, "reason")


def test_parquet_source(tmp_path: Path) -> None:
    path = tmp_path / "deaths.parquet"
    pl.DataFrame({"身份证号": [VECTOR, OTHER], "死亡日期": [date(2026, 3, 15), date(2025, 1, 1)]}).write_parquet(path)
    loaded = loaders.load(path, "deaths", AS_OF)
    assert loaded.ok
    assert loaded.frame.get_column("_row").to_list() == [2, 3]
    assert loaded.frame.get_column("death_date").to_list() == [date(2026, 3, 15), date(2025, 1, 1)]
    assert loaded.frame.get_column("name").to_list() == [None, None]  # optional, absent


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("date", "2026-03-05", date(2026, 3, 5)),
        ("date", "2026/3/5", date(2026, 3, 5)),
        ("date", "20260305", date(2026, 3, 5)),
        ("date", "2026-03-05 00:00:00", date(2026, 3, 5)),
        ("date", "2026-03-05T10:20:30", date(2026, 3, 5)),
        ("date", " 2026年3月5日 ", date(2026, 3, 5)),
        ("date", "2026.3.5", date(2026, 3, 5)),
        ("date", "46086", date(2026, 3, 5)),  # Excel's serial number of the day
        ("month", "46082", date(2026, 3, 1)),
        ("date", "2026.03.05", date(2026, 3, 5)),
        ("month", "2026.03", date(2026, 3, 1)),
        ("month", "2026-03", date(2026, 3, 1)),
        ("month", "2026/3", date(2026, 3, 1)),
        ("month", "202603", date(2026, 3, 1)),
        ("month", "2026-03-31", date(2026, 3, 1)),
        ("month", "2026-03-31 00:00:00", date(2026, 3, 1)),
    ],
)
def test_accepted_dates_and_months(kind: str, text: str, expected: date) -> None:
    if kind == "date":
        df = pl.DataFrame({"id_number": [VECTOR], "death_date": [text]})
        frame = loaders.load_frame(df, "deaths", "deaths.csv", AS_OF).frame
        assert frame.get_column("death_date").to_list() == [expected]
    else:
        df = pl.DataFrame({"id_number": [VECTOR], "last_paid_month": [text]})
        frame = loaders.load_frame(df, "housing_fund", "housing_fund.csv", AS_OF).frame
        assert frame.get_column("last_paid_month").to_list() == [expected]


def test_optional_code_default_and_labels() -> None:
    df = pl.DataFrame(
        {"身份证号": [VECTOR, OTHER, VECTOR], "号牌号码": ["A1", "A2", "A3"],
         "车辆类型": ["小型汽车", "Motorcycle", "残疾人专用车"], "车辆状态": ["", "报废", None]}
    )  # fmt: skip
    frame = loaders.load_frame(df, "vehicles", "vehicles.csv", AS_OF).frame
    assert frame.get_column("vehicle_type").to_list() == ["car", "motorcycle", "disabled_mobility"]
    assert frame.get_column("status").to_list() == ["normal", "scrapped", "normal"]
    assert frame.get_column("purchase_price").dtype == pl.Float64


@pytest.mark.parametrize("rows", [2, cells.SMALL + 1])  # an API request's few rows and a file's many
def test_programs_as_townships_name_them(rows: int) -> None:
    spelled = ["城市低保", "农村低保", "最低生活保障", "特困供养人员", "五保", "低边", "残疾人护理补贴", "高龄补贴"]
    expected = ["dibao", "dibao", "dibao", "tekun", "tekun", "edge", "disability_care", "elderly"]
    programs = (spelled * rows)[:rows * len(spelled)]
    df = pl.DataFrame({"救助类别": programs, "家庭编号": "H1", "身份证号": VECTOR, "姓名": "张三",
                       "行政区划代码": "320302", "月保障金额": "800"})
    loaded = loaders.load_frame(df, "roll", "roll.csv", AS_OF)
    assert loaded.ok and loaded.frame.get_column("program").to_list() == (expected * rows)[:len(programs)]
    unknown = loaders.load_frame(df.with_columns(pl.lit("城市低收入").alias("救助类别")), "roll", "roll.csv", AS_OF)
    assert not unknown.ok and "dibao/低保" in unknown.problems[0].message


def test_vehicle_kinds_and_hukou_statuses_as_the_registries_name_them() -> None:
    vehicles = pl.DataFrame({"身份证号": [VECTOR] * 4, "号牌号码": ["A1", "A2", "A3", "A4"],
                             "车辆类型": ["小型普通客车", "轿车", "普通二轮摩托车", "重型货车"]})
    frame = loaders.load_frame(vehicles, "vehicles", "vehicles.csv", AS_OF).frame
    assert frame.get_column("vehicle_type").to_list() == ["car", "car", "motorcycle", "truck"]
    hukou = pl.DataFrame({"身份证号": [VECTOR] * 3, "姓名": "张三", "行政区划代码": "320302",
                          "户籍状态": ["死亡注销", "户口迁出", "正常"]})
    frame = loaders.load_frame(hukou, "hukou", "hukou.csv", AS_OF).frame
    assert frame.get_column("status").to_list() == ["deceased", "moved_out", "normal"]


def test_blank_rows_are_skipped_and_rows_keep_their_numbers(tmp_path: Path) -> None:
    loaded = _roll(tmp_path, ROLL_ROW, ",,,,,,", "", ROLL_ROW.replace("H1", "H9"))
    assert loaded.ok
    assert loaded.frame.get_column("_row").to_list() == [2, 5]


def test_a_title_above_the_header_is_passed_over_and_rows_keep_their_spreadsheet_numbers(tmp_path: Path) -> None:
    # Rolls kept by hand open with a title and a line about who filled them in.
    title = ["2026年6月城乡低保名册,,,,,,", "填报单位：云龙区民政局,,,,填报日期：2026-07-01,,", ""]
    bad = ROLL_ROW.replace("H1", "H2").replace(",800,", ",八百,")
    loaded = loaders.load(_csv(tmp_path / "roll.csv", [*title, ROLL_HEADER, ROLL_ROW, bad], "gbk"), "roll", AS_OF)
    plain = _roll(tmp_path, ROLL_ROW, bad)
    assert loaded.frame.drop("_row").equals(plain.frame.drop("_row"))
    assert loaded.frame.get_column("_row").to_list() == [5]
    assert [(p.row, p.column) for p in loaded.problems] == [(6, "benefit_monthly")]
    assert loaded.rejects.get_column("_row").to_list() == [6]


def test_totals_rows_are_passed_over_with_a_warning_other_rows_without_an_id_are_rejected(tmp_path: Path) -> None:
    # A village's 小计 inside, the 合计 at the end: no records, and no reason to refuse the roll.
    rows = [ROLL_ROW, ",小 计：,,,,800,", ROLL_ROW.replace("H1", "H2"), "合计,,,共2人,,1600,",
            ROLL_ROW.replace(VECTOR, "").replace("张三", "李四"),  # a person without an ID: rejected
            ROLL_ROW.replace("张三", "合计")]  # an ID: a record, whatever its name
    loaded = _roll(tmp_path, *rows)
    assert loaded.frame.get_column("_row").to_list() == [2, 4, 7]
    assert loaded.rejects.get_column("_row").to_list() == [6]
    assert {p.row for p in loaded.problems} == {6}
    passed = [w for w in loaded.warnings if "合计" in w.message]
    assert [(w.row, w.column) for w in passed] == [(3, None), (5, None)]
    clean = _roll(tmp_path, ROLL_ROW, "合计,,,,,800,")
    assert clean.ok and clean.rejects.height == 0 and clean.frame.height == 1


def test_the_header_again_where_files_were_joined_is_passed_over(tmp_path: Path) -> None:
    loaded = _roll(tmp_path, ROLL_ROW, ROLL_HEADER, ROLL_ROW.replace("H1", "H2"))
    assert loaded.ok and loaded.frame.get_column("_row").to_list() == [2, 4]
    assert [(w.row, "header again" in w.message) for w in loaded.warnings] == [(3, True)]  # not also an invalid ID
    deaths = _csv(tmp_path / "deaths.csv", ["身份证号,死亡日期", f"{VECTOR},2026-01-05", "公民身份号码,死亡日期",
                                            f"{OTHER},2026-02-05", "身份证号,2026-03-05"])  # an alias; an ID column's header with a date
    loaded = loaders.load(deaths, "deaths", AS_OF)
    assert loaded.ok and loaded.frame.get_column("_row").to_list() == [2, 4]
    assert [w.row for w in loaded.warnings] == [3, 5]


def test_a_roll_saved_as_csv_from_merged_household_cells_says_how_to_mend_it(tmp_path: Path) -> None:
    member = ROLL_ROW.replace(",H1,", ",,").replace("张三", "李四")
    loaded = _roll(tmp_path, ROLL_ROW, member, member.replace("李四", "王五"))
    assert [(p.row, p.column) for p in loaded.problems] == [(3, "household_id"), (4, "household_id"),
                                                           (None, "household_id")]
    assert "upload the workbook itself" in loaded.problems[-1].message
    one = _roll(tmp_path, ROLL_ROW, member)  # one empty household: a slip, not a merge
    assert [p.row for p in one.problems] == [3]


def test_a_comma_typed_in_a_name_rejects_that_row_and_the_rest_is_read(tmp_path: Path) -> None:
    shifted = ROLL_ROW.replace("H1", "H2").replace("张三", "张三,李四")  # every cell after it one to the right
    loaded = _roll(tmp_path, ROLL_ROW, shifted, ROLL_ROW.replace("H1", "H3") + ",,")
    assert loaded.frame.get_column("household_id").to_list() == ["H1", "H3"]
    assert loaded.rejects.get_column("_row").to_list() == [3]
    assert loaded.rejects.get_column("household_id").to_list() == ["H2"]  # its cells as written
    (problem,) = loaded.problems
    assert (problem.row, problem.value) == (3, "2026-01-15") and "多" in problem.message


def test_header_only_file_gives_typed_empty_frame(tmp_path: Path) -> None:
    loaded = _roll(tmp_path)
    assert loaded.ok and loaded.frame.height == 0 and loaded.rejects.height == 0
    assert loaded.frame.schema["benefit_monthly"] == pl.Float64
    assert loaded.frame.schema["id_valid"] == pl.Boolean
    assert loaded.rejects.columns[0] == "_row" and loaded.rejects.columns[-1] == "reason"


def test_in_memory_frame_with_typed_columns() -> None:
    df = pl.DataFrame({"id_number": [VECTOR], "balance": [1500.0], "bank": [None]})
    loaded = loaders.load_frame(df, "deposits", "api", AS_OF, first_row=10)
    assert loaded.frame.row(0, named=True)["balance"] == 1500.0
    assert loaded.frame.get_column("_row").to_list() == [10]


def test_unknown_columns_do_not_shadow_added_columns() -> None:
    df = pl.DataFrame({"id_number": [VECTOR], "balance": ["1"], "_row": ["7"], "reason": ["old"]})
    frame = loaders.load_frame(df, "deposits", "deposits.csv", AS_OF).frame
    assert frame.get_column("_row").to_list() == [2]
    assert frame.get_column("_row_input").to_list() == ["7"]
    assert frame.get_column("reason_input").to_list() == ["old"]


# ---- bad cells: rejected with every problem, valid rows kept ---------------------------------

BAD_CELLS = [
    ("benefit_monthly", "-5", "must not be negative"),
    ("benefit_monthly", "abc", "not a number"),
    ("benefit_monthly", '"1,5"', "not a number"),  # a decimal comma is not silently 15
    ("program", "未知类别", "allowed: dibao/低保"),
    ("region_code", "32030", "6 to 12 digits"),
    ("region_code", "3203021234567", "6 to 12 digits"),
    ("name", "", "required value is empty"),
    ("id_number", " ", "required value is empty"),
]
COLUMN_INDEX = {name: i for i, name in enumerate(
    ["program", "household_id", "id_number", "name", "region_code", "benefit_monthly", "enrolled_on"]
)}  # fmt: skip


@pytest.mark.parametrize(("column", "value", "fragment"), BAD_CELLS)
def test_bad_cell_rejects_the_row(tmp_path: Path, column: str, value: str, fragment: str) -> None:
    cells = ROLL_ROW.split(",")
    cells[COLUMN_INDEX[column]] = value
    loaded = _roll(tmp_path, ROLL_ROW, ",".join(cells), ROLL_ROW.replace("H1", "H3"))
    assert not loaded.ok
    assert loaded.frame.get_column("_row").to_list() == [2, 4]  # valid rows kept
    (problem,) = loaded.problems
    assert (problem.file, problem.row, problem.column) == ("roll.csv", 3, column)
    assert fragment in problem.message
    assert "roll.csv" in str(problem) and "row 3" in str(problem) and column in str(problem)
    reject = loaded.rejects.row(0, named=True)
    assert reject["_row"] == 3 and column in reject["reason"] and fragment in reject["reason"]
    assert reject[column] == (value.strip('"') or None)  # the cell as given, canonical name


OPTIONAL_CELLS = [  # the roll's optional cells: the person is kept, the cell read as empty
    ("enrolled_on", "2026-13-01", "not a valid date", None),
    ("enrolled_on", "abc", "not a valid date", None),
    ("enrolled_on", "2026.2.30", "not a valid date", None),
    ("enrolled_on", "1.5", "not a valid date", None),  # a number, not a date with dots
    ("enrolled_on", "0226-03-01", "year 1900-2199", None),
    ("declared_income_monthly", "六百", "not a number", 0.0),  # its default
    ("declared_income_monthly", "-5", "must not be negative", 0.0),
]


@pytest.mark.parametrize(("column", "value", "fragment", "read_as"), OPTIONAL_CELLS)
def test_a_bad_optional_roll_cell_keeps_the_person_with_a_warning(tmp_path: Path, column: str, value: str,
                                                                 fragment: str, read_as: object) -> None:
    header = ROLL_HEADER + ",申报月收入"
    cells = (ROLL_ROW + ",600").split(",")
    cells[{**COLUMN_INDEX, "declared_income_monthly": 7}[column]] = value
    loaded = _roll(tmp_path, ROLL_ROW + ",600", ",".join(cells), header=header)
    assert loaded.ok and loaded.rejects.height == 0  # every check still sees the person
    assert loaded.frame.get_column(column).to_list()[1] == read_as
    (warning,) = loaded.warnings
    assert (warning.row, warning.column, warning.value) == (3, column, value) and fragment in warning.message


def test_row_with_several_problems_is_rejected_once_with_all(tmp_path: Path) -> None:
    loaded = _roll(tmp_path, f"xx,H1,{VECTOR},,32030,-1,2026-13-01")
    assert loaded.rejects.height == 1
    assert [p.column for p in loaded.problems] == [
        "program", "name", "region_code", "benefit_monthly", "enrolled_on"
    ]  # fmt: skip
    assert all(p.row == 2 for p in loaded.problems)
    assert loaded.rejects.item(0, "reason").count("; ") == 4


def test_source_rejects_invalid_id_roll_keeps_it(tmp_path: Path) -> None:
    bad = VECTOR[:-1] + "1"
    src = loaders.load_frame(
        pl.DataFrame({"id_number": [VECTOR, bad, "3.20303E+17"], "death_date": ["2026-01-01"] * 3}),
        "deaths", "deaths.csv", AS_OF,
    )  # fmt: skip
    assert src.frame.get_column("id_number").to_list() == [VECTOR]
    assert [p.message for p in src.problems] == [ids.problem(bad, AS_OF), ids.problem("3.20303E+17", AS_OF)]
    assert "check character should be X" in src.rejects.item(0, "reason")
    assert not src.warnings

    roll = _roll(tmp_path, ROLL_ROW.replace(VECTOR, bad))
    assert roll.ok and roll.frame.get_column("id_valid").to_list() == [False]
    assert roll.frame.get_column("id_number").to_list() == [bad]
    (warning,) = roll.warnings
    assert warning.row == 2 and warning.message == ids.problem(bad, AS_OF)


def test_birth_after_as_of_is_invalid_at_as_of() -> None:
    first17 = "11010520270101001"
    future = first17 + ids.check_char(first17)
    df = pl.DataFrame({"id_number": [future], "balance": ["1"]})
    assert loaders.load_frame(df, "deposits", "d.csv", None).ok
    assert not loaders.load_frame(df, "deposits", "d.csv", AS_OF).ok


def test_problems_are_capped_per_column_rejects_are_not() -> None:
    n = loaders.PROBLEM_CAP + 500
    df = pl.DataFrame({"id_number": [VECTOR] * n, "balance": ["-1"] * n})
    loaded = loaders.load_frame(df, "deposits", "deposits.csv", AS_OF)
    assert loaded.rejects.height == n and loaded.frame.height == 0
    assert len(loaded.problems) == loaders.PROBLEM_CAP + 1
    assert loaded.problems[-1].row is None and "500 more rows" in loaded.problems[-1].message


# ---- bad headers: SchemaError, all problems at once ------------------------------------------


def test_missing_required_columns_name_the_accepted_headers(tmp_path: Path) -> None:
    with pytest.raises(SchemaError) as caught:
        _roll(tmp_path, "低保,H1,张三,320302", header="救助类别,家庭编号,姓名,行政区划代码")
    problems = caught.value.problems
    assert [p.column for p in problems] == ["id_number", "benefit_monthly"]
    assert all(p.file == "roll.csv" for p in problems)
    assert "id_number, 身份证号, 公民身份号码, 身份证号码, 证件号码" in problems[0].message
    assert "月保障金额" in problems[1].message and "roll.csv" in str(caught.value)


# ---- directories ----------------------------------------------------------------------------


def test_load_sources(tmp_path: Path) -> None:
    _csv(tmp_path / "deaths.csv", ["身份证号,死亡日期", f"{VECTOR},2026-03-15"])
    _csv(tmp_path / "deposits.csv", ["id_number,balance", f"{OTHER},100"])
    _csv(tmp_path / "readme.csv", ["whatever"])
    loaded, missing = loaders.load_sources(tmp_path, AS_OF)
    assert set(loaded) == {"deaths", "deposits"}
    assert "hukou" in missing and "deaths" not in missing and len(missing) == 10


def test_load_sources_reports_every_bad_file(tmp_path: Path) -> None:
    (tmp_path / "deaths.csv").write_bytes(b"")
    _csv(tmp_path / "deposits.csv", ["id_number,bank", f"{OTHER},x"])
    with pytest.raises(InputError) as caught:
        loaders.load_sources(tmp_path, AS_OF)
    assert not isinstance(caught.value, (FileUnreadable, SchemaError))  # mixed kinds
    assert {p.file for p in caught.value.problems} == {"deaths.csv", "deposits.csv"}


def test_loading_is_vectorised(tmp_path: Path) -> None:
    n = 200_000
    df = pl.DataFrame(
        {"id_number": [VECTOR, OTHER] * (n // 2), "death_date": ["2026-03-15", "2026/1/2"] * (n // 2)}
    )
    loaded = loaders.load_frame(df, "deaths", "deaths.csv", AS_OF)
    assert loaded.frame.height == n  # its speed: benchmarks/, never a timed test


# ---- small tables (API requests) take a path of their own: the same results ---------------------

TRICKY_ROLL = {
    "program": ["低保", "DIBAO", "Tekun", "未知", "dibao", None, "dibao"],
    "household_id": ["H1", "H1", " H2 ", "H3", "H4", None, "H5"],
    "id_number": [
        VECTOR.lower(), f" {LEGACY15} ", "110105000001011231", VECTOR[:-1] + "1", "3.20303E+17", None, OTHER,
    ],
    "name": ["a", "b", "c", "", "e", None, "g"],
    "region_code": ["320302", "32030", "320302000000", "320302", "x", None, "320302"],
    "benefit_monthly": ["1,234.50", "-0", "1,5", "-1", "800", None, ".5"],
    "enrolled_on": ["2026/1/5", "20260105", " 2026年1月5日 ", "2026-13-01", "0226-03-01", None, "2026-01-05 10:20"],
    "备注": ["x", None, "", None, None, " ", None],
}


@pytest.mark.parametrize("key", ["roll", "deaths"])
def test_small_and_large_tables_are_read_alike(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    df = pl.DataFrame(TRICKY_ROLL)
    if key == "deaths":
        df = df.select("id_number", "name", death_date="enrolled_on")
    small = loaders.load_frame(df, key, "f.csv", AS_OF, first_row=5)
    monkeypatch.setattr(cells, "SMALL", -1)
    large = loaders.load_frame(df, key, "f.csv", AS_OF, first_row=5)
    assert small.frame.schema == large.frame.schema and small.frame.equals(large.frame)
    assert small.rejects.schema == large.rejects.schema and small.rejects.equals(large.rejects)
    assert small.problems == large.problems and small.warnings == large.warnings
    assert small.rejects.height and small.frame.height  # both paths exercised
    assert small.frame.get_column("_row").to_list()[0] == 5



@settings(max_examples=60, deadline=None)
@given(st.lists(test_ids.near_ids, min_size=1, max_size=12))
def test_small_tables_read_any_id_spelling_as_large_ones(spellings: list[str]) -> None:
    # The small path reads the spellings its first pass leaves over with ids' scalar functions,
    # the large path with their expressions: the same loaded rows, warnings and rejects.
    df = pl.DataFrame({"program": "dibao", "household_id": "H1", "id_number": spellings, "name": "a",
                       "region_code": "320302", "benefit_monthly": "800"})
    for key, frame in (("roll", df), ("deaths", df.select("id_number", "name", death_date=pl.lit("2026-01-05")))):
        small = loaders.load_frame(frame, key, "f.csv", AS_OF)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cells, "SMALL", -1)
            large = loaders.load_frame(frame, key, "f.csv", AS_OF)
        assert small.frame.equals(large.frame) and small.rejects.equals(large.rejects)
        assert small.problems == large.problems and small.warnings == large.warnings


# ---- amounts held as numbers (a Parquet file's) are read as they are: the same as their text ----

_AMOUNTS = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e7).map(lambda x: round(x, 2)),
    st.sampled_from([0.0, -0.0, 1e-5, 9.9e-6, 1e15, 1e15 - 1, 999999999999999.9, 1e16, -5.0, 1e20]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_AMOUNTS, min_size=1, max_size=8), st.booleans())
def test_amounts_held_as_numbers_load_as_their_text_does(amounts: list[float | None], integers: bool) -> None:
    """load_frame reads a float or integer amount column as it is when every value has a plain
    decimal spelling (engine.loaders._plain_numbers), else as text: either way the same frame,
    rejects (cells spelt as files.to_text spells them) and problems as the table as text."""
    if integers:
        amounts = [None if a is None or a != a or abs(a) > 2**62 else int(a) for a in amounts]
    typed = pl.DataFrame({
        "id_number": [VECTOR] * len(amounts),
        "bank": ["工商银行"] * len(amounts),
        "balance": pl.Series(amounts, dtype=pl.Int64 if integers else pl.Float64),
    })
    roll_typed = pl.DataFrame({  # an optional amount with a default, and an ID column of numbers
        "program": "dibao", "household_id": "H1", "id_number": pl.Series([int(OTHER)] * len(amounts)),
        "name": "a", "region_code": "320302", "benefit_monthly": "800",
        "declared_income_monthly": typed.get_column("balance"),
    })
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cells, "SMALL", -1)  # the large tables' path, where numbers are kept
        for key, frame in (("deposits", typed), ("roll", roll_typed)):
            as_numbers = loaders.load_frame(frame, key, "f.parquet", AS_OF)
            as_text = loaders.load_frame(files.to_text(frame), key, "f.parquet", AS_OF)
            assert as_numbers.frame.schema == as_text.frame.schema and as_numbers.frame.equals(as_text.frame)
            assert as_numbers.rejects.schema == as_text.rejects.schema
            assert as_numbers.rejects.equals(as_text.rejects)
            assert as_numbers.problems == as_text.problems and as_numbers.warnings == as_text.warnings


def test_a_parquet_source_keeps_its_amounts_as_numbers_and_names_bad_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cells, "SMALL", 1)
    path = tmp_path / "deposits.parquet"
    pl.DataFrame({"身份证号": [VECTOR, OTHER, VECTOR], "存款余额": [1234.5, -20.0, None]}).write_parquet(path)
    seen: list[tuple[str, ...]] = []
    original = cells.plan
    monkeypatch.setattr(cells, "plan", lambda *args: seen.append(args[4] if len(args) > 4 else ()) or original(*args))
    loaded = loaders.load(path, "deposits", AS_OF)
    assert seen == [("balance",)]  # read as numbers, not through text
    assert loaded.frame.get_column("balance").to_list() == [1234.5]
    assert loaded.rejects.get_column("balance").to_list() == ["-20", None]
    assert [(p.row, p.column, p.value) for p in loaded.problems] == [(3, "balance", "-20"), (4, "balance", None)]
    assert "negative" in loaded.problems[0].message and "empty" in loaded.problems[1].message
