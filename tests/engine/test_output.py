"""engine.output: the flags in three formats, the summary, and the rejects file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from engine import ids
from engine.errors import CrosscheckError
from engine.output import fitted_evidence, neutralise, rejects_path, summary, write_flags, write_rejects
from engine.run import FLAG_COLUMNS
from schemas import FLAGS

AS_OF = date(2026, 6, 30)


def pid(n: int, born: str = "19800101") -> str:
    first17 = f"320302{born}{n:03d}"
    return first17 + ids.check_char(first17)


def flag(rule_id: str, household: str, n: int, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "rule_id": rule_id,
        "severity": "high",
        "cadence": "monthly",
        "program": "dibao",
        "household_id": household,
        "id_number": pid(n),
        "roll_id_number": pid(n),
        "name": "张三",
        "region_code": "320302001001",
        "source": "deaths,hukou",
        "match_method": "exact",
        "match_score": 100.0,
        "evidence": '{"records":[]}',
        "overpayment": None,
        "as_of": AS_OF,
        "level": "person",
        "rule_label_zh": {"deceased": "已死亡仍在享受待遇", "vehicle_owned": "家庭成员名下有车辆"}[rule_id],
        "rule_label_en": "x",
    }
    row.update(values)
    return row


@pytest.fixture
def flags() -> pl.DataFrame:
    rows = [
        flag("deceased", "000123", 1, overpayment=2400.0, name="=HYPERLINK(\"http://x\",\"y\")"),
        flag("deceased", "000123", 2, overpayment=1600.5, name="+1", program="tekun"),
        flag("deceased", "H2", 3, overpayment=None, name="-2", region_code="320302002"),
        flag("vehicle_owned", "H2", 3, cadence="quarterly", name="@SUM(A1)", match_method="legacy15",
             region_code="320302002", source="vehicles", level="household"),
        flag("vehicle_owned", "H3", 4, cadence="quarterly", name="\tcmd", region_code="320302002003",
             source="vehicles", severity="medium", level="household"),
    ]
    return pl.DataFrame(rows, schema=FLAG_COLUMNS)


def test_parquet_round_trip_keeps_contract_order(tmp_path: Path, flags: pl.DataFrame) -> None:
    shuffled = flags.select(list(reversed(flags.columns)))  # write_flags restores the order
    path = write_flags(shuffled, tmp_path / "flags.parquet")
    back = pl.read_parquet(path)
    assert back.columns[: len(FLAGS.names)] == list(FLAGS.names)
    assert back.select(flags.columns).equals(flags)


def test_csv_has_bom_contract_headers_and_exact_ids(tmp_path: Path, flags: pl.DataFrame) -> None:
    path = write_flags(flags, tmp_path / "flags.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    header = raw[3:].split(b"\n", 1)[0].decode()
    assert header.split(",")[: len(FLAGS.names)] == list(FLAGS.names)
    back = pl.read_csv(path, infer_schema=False)
    assert back["id_number"].to_list() == flags["id_number"].to_list()
    assert back["household_id"].to_list()[0] == "000123"  # leading zeros kept
    assert back["as_of"].to_list()[0] == "2026-06-30"
    # data for programs is written verbatim: no quote prefix in CSV
    assert back["name"].to_list()[1] == "+1"


def _sheet_rows(path: Path, title: str) -> list[tuple[openpyxl.cell.cell.Cell, ...]]:
    return list(openpyxl.load_workbook(path)[title].iter_rows())


def test_xlsx_detail_sheet_for_people(tmp_path: Path, flags: pl.DataFrame) -> None:
    path = write_flags(flags, tmp_path / "flags.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["flags", "预警明细", "汇总"]
    sheet = book["预警明细"]
    headers = [c.value for c in next(sheet.iter_rows(max_row=1))]
    expected = [c.zh for c in FLAGS.columns]
    expected.insert(1, "规则名称")
    assert headers[: len(expected)] == expected
    assert "核对层级" in headers
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref is not None and sheet.auto_filter.ref.startswith("A1:")
    assert sheet.column_dimensions["A"].width > 8

    col = {h: i for i, h in enumerate(headers)}
    body = list(sheet.iter_rows(min_row=2))
    assert len(body) == flags.height
    for cells, expected_id in zip(body, flags["id_number"], strict=True):
        for header in ("身份证号", "名册身份证号", "家庭编号", "行政区划代码"):
            assert cells[col[header]].data_type == "s", header
        assert cells[col["身份证号"]].value == expected_id
    first = body[0]
    assert first[col["家庭编号"]].value == "000123"
    assert first[col["救助类别"]].value == "低保"
    assert first[col["严重程度"]].value == "高"
    assert first[col["匹配方式"]].value == "精确"
    assert first[col["比对周期"]].value == "每月"
    assert first[col["比对数据源"]].value == "死亡人员、户籍"
    assert first[col["规则名称"]].value == "已死亡仍在享受待遇"
    assert first[col["多发金额"]].value == 2400
    assert first[col["多发金额"]].data_type == "n"
    assert first[col["核对基准日"]].value.date() == AS_OF
    assert body[3][col["匹配方式"]].value == "15位转换"
    assert body[1][col["救助类别"]].value == "特困"


def test_xlsx_first_sheet_is_the_contracts_data(tmp_path: Path, flags: pl.DataFrame) -> None:
    """CONTRACTS §4 names XLSX beside Parquet and CSV: a program reading the first sheet gets
    the contract's columns in order and the values the CSV holds, codes and not labels."""
    write_flags(flags, tmp_path / "flags.xlsx")
    write_flags(flags, tmp_path / "flags.csv")
    book = openpyxl.load_workbook(tmp_path / "flags.xlsx")
    rows = list(book.worksheets[0].iter_rows())
    headers = [c.value for c in rows[0]]
    assert headers[: len(FLAGS.names)] == list(FLAGS.names)
    assert headers[len(FLAGS.names):] == [c for c in flags.columns if c not in FLAGS.names]
    csv = pl.read_csv(tmp_path / "flags.csv", infer_schema=False)
    assert len(rows) - 1 == csv.height
    for cells, expected in zip(rows[1:], csv.iter_rows(named=True), strict=True):
        got = dict(zip(headers, cells, strict=True))
        for name in ("rule_id", "severity", "cadence", "program", "household_id", "id_number", "roll_id_number",
                     "name", "region_code", "source", "match_method", "evidence"):
            assert got[name].value == expected[name], name  # no labels, no quote prefix
            assert got[name].data_type == "s", name
        assert got["as_of"].value.date() == AS_OF
        assert got["match_score"].value == float(expected["match_score"])
        assert (got["overpayment"].value is None) == (expected["overpayment"] is None)
    assert rows[1][headers.index("overpayment")].value == 2400


def test_xlsx_long_evidence_stays_json(tmp_path: Path, flags: pl.DataFrame) -> None:
    records = [{"bank": "银行", "balance": float(n), "account": f"{n:020d}"} for n in range(2000)]
    evidence = json.dumps({"records": records, "total": 123.0}, ensure_ascii=False)
    assert len(evidence) > 32_767
    write_flags(flags.with_columns(pl.lit(evidence).alias("evidence")), tmp_path / "flags.xlsx")
    book = openpyxl.load_workbook(tmp_path / "flags.xlsx")
    for title in ("flags", "预警明细"):
        sheet = book[title]
        column = [c.value for c in next(sheet.iter_rows(max_row=1))].index(
            "evidence" if title == "flags" else "证据")
        cell = next(sheet.iter_rows(min_row=2, max_row=2))[column].value
        assert len(cell) <= 32_767
        shown = json.loads(cell)
        assert shown["records_total"] == 2000 and shown["total"] == 123.0
        assert 0 < len(shown["records"]) < 2000 and shown["records"] == records[: len(shown["records"])]
        one_more = {**shown, "records": records[: len(shown["records"]) + 1]}
        assert len(json.dumps(one_more, ensure_ascii=False, separators=(",", ":"))) > 32_767  # as many as fit
    assert fitted_evidence('{"records":[1]}') == '{"records":[1]}'


def test_xlsx_for_people_only_leaves_out_the_data(tmp_path: Path, flags: pl.DataFrame) -> None:
    path = write_flags(flags, tmp_path / "flags.xlsx", data_sheet=False)
    assert openpyxl.load_workbook(path).sheetnames == ["预警明细", "汇总"]


def test_xlsx_neutralises_formula_injection(tmp_path: Path, flags: pl.DataFrame) -> None:
    path = write_flags(flags, tmp_path / "flags.xlsx")
    sheet = openpyxl.load_workbook(path)["预警明细"]
    headers = [c.value for c in next(sheet.iter_rows(max_row=1))]
    names = [row[headers.index("姓名")] for row in sheet.iter_rows(min_row=2)]
    assert [c.value for c in names] == ["'" + n for n in flags["name"].to_list()]
    assert all(c.data_type == "s" for c in names)
    # nothing anywhere in the workbook is a formula
    book = openpyxl.load_workbook(path)
    assert all(c.data_type != "f" for ws in book for row in ws.iter_rows() for c in row)


def test_neutralise() -> None:
    for dangerous in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert neutralise(dangerous) == "'" + dangerous
    for harmless in ("张三", "320302198001010017", "{\"a\":1}", "a=b", ""):
        assert neutralise(harmless) == harmless


def test_summary_counts(flags: pl.DataFrame) -> None:
    got = summary(flags)
    assert got.columns == ["rule_id", "rule_label_zh", "township", "flags", "households", "overpayment"]
    rows = {(r["rule_id"], r["township"]): r for r in got.iter_rows(named=True)}
    assert rows[("deceased", "320302001")]["flags"] == 2
    assert rows[("deceased", "320302001")]["households"] == 1
    assert rows[("deceased", "320302001")]["overpayment"] == pytest.approx(4000.5)
    assert rows[("deceased", "320302002")]["overpayment"] is None  # no estimate, not 0
    assert rows[("vehicle_owned", "320302002")]["households"] == 2  # H2 and H3 (12-digit code)
    assert got["rule_id"].to_list()[:2] == ["deceased", "deceased"]  # catalogue order
    assert summary(flags, "county")["county"].unique().to_list() == ["320302"]
    with pytest.raises(CrosscheckError):
        summary(flags, "province")


def test_xlsx_summary_sheet(tmp_path: Path, flags: pl.DataFrame) -> None:
    path = write_flags(flags, tmp_path / "flags.xlsx")
    rows = [[c.value for c in r] for r in _sheet_rows(path, "汇总")]
    assert rows[0][:4] == ["规则编号", "规则名称", "乡镇(街道)代码", "预警数"]
    body = [r for r in rows[1:] if r[0] not in (None, "合计")]
    assert [(r[0], r[2], r[3], r[4]) for r in body] == [
        ("deceased", "320302001", 2, 1),
        ("deceased", "320302002", 1, 1),
        ("vehicle_owned", "320302002", 2, 2),
    ]
    assert body[0][5] == pytest.approx(4000.5)
    total = next(r for r in rows if r[0] == "合计")
    assert total[3] == flags.height


def test_empty_flags_write_in_every_format(tmp_path: Path) -> None:
    empty = pl.DataFrame(schema=FLAG_COLUMNS)
    for suffix in (".parquet", ".csv", ".xlsx"):
        path = write_flags(empty, tmp_path / f"flags{suffix}")
        assert path.stat().st_size > 0
    assert pl.read_parquet(tmp_path / "flags.parquet").columns == list(FLAG_COLUMNS)
    assert [c.value for c in _sheet_rows(tmp_path / "flags.xlsx", "预警明细")[0]][0] == "规则"


def test_unknown_extension_is_refused(tmp_path: Path, flags: pl.DataFrame) -> None:
    with pytest.raises(CrosscheckError, match=r"\.parquet, \.csv or \.xlsx"):
        write_flags(flags, tmp_path / "flags.json")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_leaves_no_temporary_files(tmp_path: Path, flags: pl.DataFrame) -> None:
    target = tmp_path / "flags.csv"
    target.write_text("old")
    write_flags(flags, target)
    write_flags(flags, tmp_path / "flags.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.csv", "flags.xlsx"]
    assert target.read_text(encoding="utf-8-sig").startswith("rule_id,")


def test_rejects_from_files(tmp_path: Path) -> None:
    out = tmp_path / "flags.xlsx"
    rejects = {
        "roll.csv": pl.DataFrame({"_row": [3], "program": ["低保"], "benefit_monthly": ["abc"], "reason": ["bad"]}),
        "deaths.csv": pl.DataFrame({"_row": [7], "death_date": ["2026-13-01"], "reason": ["bad date"]}),
        "hukou.csv": pl.DataFrame({"_row": [], "reason": []}, schema={"_row": pl.Int64, "reason": pl.String}),
    }
    path = write_rejects(rejects, out)
    assert path == rejects_path(out) == tmp_path / "flags.rejects.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    back = pl.read_csv(path, infer_schema=False)
    assert back.columns == ["file", "row", "reason", "program", "benefit_monthly", "death_date"]
    assert back.rows() == [
        ("roll.csv", "3", "bad", "低保", "abc", None),
        ("deaths.csv", "7", "bad date", None, None, "2026-13-01"),
    ]


def test_rejects_one_frame_and_none(tmp_path: Path) -> None:
    out = tmp_path / "result.csv"
    frame = pl.DataFrame({"file": ["roll.csv"], "row": [4], "reason": ["r"], "name": ["=x"]})
    path = write_rejects(frame, out)
    assert path is not None and pl.read_csv(path, infer_schema=False).row(0) == ("roll.csv", "4", "r", "=x")
    # nothing rejected this time: the earlier run's file would be misleading, so it goes
    assert write_rejects(frame.clear(), out) is None
    assert not path.exists()


def test_xlsx_extra_sheets_are_plain_tables(tmp_path: Path, flags: pl.DataFrame) -> None:
    table = pl.DataFrame({"预警编号": [1, 2], "身份证号": [pid(1), "=1+1"], "金额（元）": [12.5, None],
                          "日期": [AS_OF, None]})
    out = write_flags(flags, tmp_path / "report.xlsx", extra_sheets={"追缴": table})
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["flags", "预警明细", "汇总", "追缴"]
    rows = list(book["追缴"].iter_rows(values_only=True))
    assert rows[0] == ("预警编号", "身份证号", "金额（元）", "日期")
    assert rows[1][:3] == (1, pid(1), 12.5) and rows[2][1] == "'=1+1"  # IDs as text, formulas neutralised
    with pytest.raises(CrosscheckError, match="xlsx"):
        write_flags(flags, tmp_path / "report.csv", extra_sheets={"追缴": table})
