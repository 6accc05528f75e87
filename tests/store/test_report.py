"""report.xlsx of a run, read back with openpyxl as a person's spreadsheet program would."""

from __future__ import annotations

import openpyxl
import pytest
import sqlalchemy as sa

from engine.errors import CrosscheckError, NotFound
from store import lifecycle
from store.models import Flag, utcnow
from store.report import run_flags, write_report
from store.runs import start_run

from .conftest import AS_OF


def sheet(path, name):
    rows = list(openpyxl.load_workbook(path, read_only=True)[name].iter_rows(values_only=True))
    return rows[0], rows[1:]


@pytest.fixture
def reported(store, deliver, city, tmp_path):
    deliver.all(city)
    first = start_run(store, AS_OF)
    with store.read() as session:
        dead = session.scalars(sa.select(Flag).where(Flag.rule_id == "deceased", Flag.overpayment > 0)
                               .order_by(Flag.id)).all()
    with store.write(lock="test") as session:
        lifecycle.review(session, dead[0].id, "confirm", "王芳", utcnow(), action="recover", amount="1234.5")
    return first, dead


def test_the_report_has_every_sheet_with_chinese_headers(store, reported, tmp_path):
    first, dead = reported
    out = write_report(store, tmp_path / "report.xlsx", first.run_id)
    book = openpyxl.load_workbook(out, read_only=True)
    assert book.sheetnames == ["预警明细", "汇总", "追缴", "处理状态", "比对信息"]
    header, rows = sheet(out, "预警明细")
    assert header[0] == "规则" and "证据" in header and "处理状态" in header and "预警编号" in header
    assert len(rows) == first.counts.found
    statuses = {r[header.index("预警编号")]: r[header.index("处理状态")] for r in rows}
    assert statuses[dead[0].id] == "已确认"
    header, rows = sheet(out, "汇总")
    assert header[:2] == ("规则编号", "规则名称") and sum(r[3] for r in rows if r[0] != "合计" and r[3]) == first.counts.found


def test_overpayment_to_recover(store, reported, tmp_path):
    _, dead = reported
    out = write_report(store, tmp_path / "report.xlsx")  # the latest completed run
    header, rows = sheet(out, "追缴")
    by_flag = {r[0]: r for r in rows if r[0] is not None}
    assert {f.id for f in dead} <= set(by_flag)  # every estimate is listed
    confirmed = by_flag[dead[0].id]
    assert confirmed[header.index("确认追缴金额（元）")] == 1234.5 and confirmed[header.index("确认人")] == "王芳"
    total = rows[-1]
    assert total[header.index("规则编号")] == "合计" and total[header.index("确认追缴金额（元）")] == 1234.5
    estimated = round(sum(f.overpayment for f in dead), 2)
    assert total[header.index("估算多发金额（元）")] == pytest.approx(estimated)


def test_a_run_that_changed_nothing_reports_the_flags_it_stands_on(store, reported, tmp_path):
    first, _ = reported
    again = start_run(store, AS_OF)
    assert {r.outcome for r in again.rules} == {"unchanged"}
    _, flags = run_flags(store, again.run_id)
    assert flags.height == first.counts.found
    _, rows = sheet(write_report(store, tmp_path / "again.xlsx", again.run_id), "比对信息")
    assert ("比对编号", str(again.run_id)) in rows and any("输入未变化" in (r[1] or "") for r in rows)


def test_report_errors(store, reported, tmp_path):
    with pytest.raises(NotFound):
        write_report(store, tmp_path / "r.xlsx", 999)
    with pytest.raises(CrosscheckError, match="xlsx"):
        write_report(store, tmp_path / "r.csv")


def test_a_townships_report_counts_the_townships_flags_only(store, reported, tmp_path):
    first, _ = reported
    with store.read() as session:
        towns = session.scalars(sa.select(sa.func.substr(Flag.region_code, 1, 9))).all()
    town = max(set(towns), key=towns.count)
    assert towns.count(town) < first.counts.raised  # other townships' flags exist
    _, rows = sheet(write_report(store, tmp_path / "town.xlsx", first.run_id, region=town), "比对信息")
    assert ("新发现", str(towns.count(town))) in rows
    _, rows = sheet(write_report(store, tmp_path / "all.xlsx", first.run_id), "比对信息")
    assert ("新发现", str(first.counts.raised)) in rows
