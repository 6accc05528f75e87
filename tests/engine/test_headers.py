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
