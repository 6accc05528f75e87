"""engine.headers: a table's headers → a dataset's columns, every problem reported at once."""

from __future__ import annotations

import polars as pl
import pytest

from engine.errors import SchemaError
from engine.headers import header_test, map_headers
from schemas import dataset

VECTOR = "11010519491231002X"


def _mapped(headers: list[str], key: str, label: str = "f.csv") -> tuple[dict[str, str], list]:
    return map_headers(pl.DataFrame({h: [VECTOR] for h in headers}), dataset(key), label)


def test_headers_match_by_name_chinese_header_or_alias_ignoring_case_and_spaces() -> None:
    names, warnings = _mapped(["ID_Number", " 存款 余额 ", "开户银行"], "deposits")
    assert names == {"ID_Number": "id_number", " 存款 余额 ": "balance", "开户银行": "bank"}
    assert warnings == []


def test_wrong_file_for_the_key_says_so_then_names_each_missing_column() -> None:
    with pytest.raises(SchemaError) as caught:
        _mapped(["身份证号", "号牌号码", "车辆类型"], "property", "property.csv")
    first, *missing = caught.value.problems
    assert "does not look like a property (房产) file" in first.message
    assert "号牌号码" in first.message and "certificate_no" in first.message
    assert {p.column for p in missing} == {"certificate_no", "usage", "area_m2"}
    assert all(p.file == "property.csv" for p in caught.value.problems)


def test_two_headers_for_one_column_and_a_missing_one_are_reported_together() -> None:
    with pytest.raises(SchemaError) as caught:
        _mapped(["身份证号", "公民身份号码", "开户银行"], "deposits")
    problems = caught.value.problems
    assert [p.column for p in problems] == ["id_number", "balance"]
    assert "are all id_number" in problems[0].message and "'身份证号', '公民身份号码'" in problems[0].message
    assert "required column balance is missing" in problems[1].message


def test_a_file_with_no_column_of_the_dataset_but_the_id_loads_with_a_warning() -> None:
    names, warnings = _mapped(["身份证号", "号牌号码"], "cadre_relatives", "cadre.csv")
    assert names == {"身份证号": "id_number", "号牌号码": "号牌号码"}
    assert len(warnings) == 1 and "does not look like a cadre_relatives" in warnings[0].message


@pytest.mark.parametrize(
    ("header", "kept_as"),
    [("_row", "_row_input"), ("reason", "reason_input"), ("id_valid", "id_valid_input"),
     ("id_number_raw", "id_number_raw_input"), ("备注", "备注")],
)
def test_unknown_columns_never_shadow_what_the_loader_adds(header: str, kept_as: str) -> None:
    names, _ = _mapped(["身份证号", "存款余额", header], "deposits")
    assert names[header] == kept_as


def test_a_header_row_names_a_column_of_the_dataset_as_map_headers_would_read_it() -> None:
    is_roll_header = header_test("roll")
    assert is_roll_header(["序号", " 身份 证号 ", None])  # spaces and case do not matter
    assert is_roll_header(["ID_Number"])
    assert not is_roll_header(["2026年6月城乡低保名册", None, None])
    assert not is_roll_header(["填报单位：云龙区民政局", 320303, "填报日期：2026-07-01"])
    assert not header_test("vehicles")(["救助类别", "家庭编号"])  # the roll's, not a vehicle file's


ROLL_HEADERS = {"program": "救助类别", "household_id": "家庭编号", "id_number": "身份证号", "name": "姓名",
                "region_code": "行政区划代码", "benefit_monthly": "月保障金额", "declared_income_monthly": "申报月收入"}


@pytest.mark.parametrize(
    ("header", "column"),
    [("月保障金额（元）", "benefit_monthly"), ("月保障金额(单位：元)", "benefit_monthly"), ("*月保障金额", "benefit_monthly"),
     ("月保障金额*（元）", "benefit_monthly"), ("身份证号码（必填）", "id_number"), ("申报月收入 (元)", "declared_income_monthly")],
)
def test_a_unit_that_does_not_change_the_amount_and_a_templates_marks_are_read_past(header: str, column: str) -> None:
    headers = [header if name == column else plain for name, plain in ROLL_HEADERS.items()]
    names, _ = _mapped(headers, "roll")
    assert names[header] == column


def test_an_amount_in_ten_thousand_yuan_is_refused_not_read_ten_thousand_times_too_small() -> None:
    with pytest.raises(SchemaError) as caught:
        _mapped(["身份证号", "号牌号码", "车辆类型", "购置价格（万元）"], "vehicles")
    (problem,) = caught.value.problems
    assert problem.column == "purchase_price" and "convert it to yuan" in problem.message
    with pytest.raises(SchemaError) as caught:  # a required amount: named once, not also as missing
        _mapped(["救助类别", "家庭编号", "身份证号", "姓名", "行政区划代码", "月保障金额(万元)"], "roll")
    assert [p.column for p in caught.value.problems] == ["benefit_monthly"]
    names, _ = _mapped(["身份证号", "存款余额", "面积（万元）"], "deposits")  # not an amount of the dataset: carried
    assert names["面积（万元）"] == "面积（万元）"
