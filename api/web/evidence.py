"""A flag's evidence side by side: what the roll says against what the source records say.

The engine's evidence is JSON: `records` (the source rows behind the finding), the rule's
metrics (totals, limits, dates…) and, for identity rules, `resolution` (the ID it was resolved
to and the candidates considered). Here it becomes labelled Chinese tables; labels come from
the dataset declarations (schemas), so a column is named as in the files the bureaus deliver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import PROGRAMS, ROLL, SOURCES

from .render import MATCH_ZH, yuan

__all__ = ["Side", "sides", "SOURCE_ZH"]

SOURCE_ZH = {"roll": "救助对象名册", **{key: d.zh for key, d in SOURCES.items()}}

# Names the rules give their metrics and evidence columns that no dataset declares.
_METRIC_ZH = {
    "record_source": "数据来源", "date": "日期", "death_date": "死亡日期", "overpayment": "多发金额（估算）",
    "households": "所在家庭数", "rows_in_program": "同一类别记录数", "enrolled_household_id": "所在家庭编号",
    "enrolled_program": "救助类别", "roll_row": "名册行号", "birth_date": "出生日期", "age": "年龄",
    "total": "合计", "threshold": "标准", "limit": "限额", "standard": "低保标准（元/人·月）",
    "household_size": "家庭人口", "per_capita": "人均（元/月）", "non_residential": "非住宅房产（套）",
    "residential_count": "住宅（套）", "area_per_capita": "人均住宅面积（㎡）", "component": "收入类别",
    "detail": "说明", "amount": "金额（元）", "searched_source": "查询的数据源", "roll_id_number": "名册身份证号",
    "problem": "问题", "id_number": "身份证号", "name": "姓名", "region_code": "行政区划代码",
}
_COMPONENT_ZH = {"declared_income": "申报收入", "pension": "养老金", "payroll": "财政供养工资"}
_MONEY = {"overpayment", "total", "limit", "threshold", "amount", "per_capita", "standard", "balance",
          "out_of_pocket", "purchase_price", "monthly_contribution", "monthly_salary", "monthly_amount",
          "benefit_monthly", "declared_income_monthly"}
_RESOLUTION_ZH = {"resolved": "已匹配", "weak": "匹配度不足，需人工核实", "none": "未找到候选人"}


@dataclass
class Side:
    roll: list[tuple[str, str]]
    source: str
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    resolution: dict[str, Any] | None = None


def _labels(sources: list[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Column → Chinese label and column → {code: label}, from the flag's source datasets."""
    labels: dict[str, str] = dict(_METRIC_ZH)
    codes: dict[str, dict[str, str]] = {"record_source": SOURCE_ZH, "searched_source": SOURCE_ZH,
                                        "enrolled_program": PROGRAMS,
                                        "program": PROGRAMS, "component": _COMPONENT_ZH}
    for key in sources:
        dataset = ROLL if key == "roll" else SOURCES.get(key)
        if dataset is None:
            continue
        for column in dataset.columns:
            labels.setdefault(column.name, column.zh)
            if column.codes:
                codes.setdefault(column.name, column.codes)
    return labels, codes


def _show(name: str, value: Any, codes: dict[str, dict[str, str]]) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if name in _MONEY and isinstance(value, (int, float)):
        return yuan(value)
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    return codes.get(name, {}).get(text, text)


def _roll_side(flag: Any, member: dict[str, Any] | None) -> list[tuple[str, str]]:
    rows = [("姓名", flag.name or "—"), ("名册身份证号", flag.roll_id_number or "—")]
    if flag.id_number and flag.id_number != flag.roll_id_number:
        rows.append(("核实身份证号", flag.id_number))
    rows += [("救助类别", PROGRAMS.get(flag.program or "", flag.program or "—")),
             ("行政区划代码", flag.region_code or "—")]
    if member:
        for name, label in (("relation", "与户主关系"), ("benefit_monthly", "月保障金额"),
                            ("declared_income_monthly", "申报月收入"), ("enrolled_on", "纳入日期")):
            if member.get(name) not in (None, ""):
                rows.append((label, _show(name, member[name], {})))
    if flag.match_method and flag.match_method != "exact":
        score = f"（{flag.match_score:g} 分）" if flag.match_score is not None else ""
        rows.append(("身份匹配方式", MATCH_ZH.get(flag.match_method, flag.match_method) + score))
    return rows


def sides(flag: Any, member: dict[str, Any] | None = None) -> Side:
    """`flag` (a StoredFlagOut: evidence parsed, IDs already masked for the reader's role) as the
    two sides; `member` is the person's roll row of the flag's program, when the roll is held."""
    sources = [s for s in (flag.source or "").split(",") if s]
    labels, codes = _labels([*sources, "roll"])
    side = Side(roll=_roll_side(flag, member), source="、".join(SOURCE_ZH.get(s, s) for s in sources) or "—")
    evidence = flag.evidence
    if not isinstance(evidence, dict):
        if evidence not in (None, ""):
            side.facts.append(("证据", _show("", evidence, codes)))
        return side
    records = evidence.get("records")
    if isinstance(records, list) and records:
        names: list[str] = []
        for record in records:
            for name in record if isinstance(record, dict) else ():
                if name not in names:
                    names.append(name)
        side.columns = [(name, labels.get(name, name)) for name in names]
        side.rows = [[_show(name, record.get(name), codes) for name in names]
                     for record in records if isinstance(record, dict)]
    for name, value in evidence.items():
        if name in ("records", "resolution"):
            continue
        side.facts.append((labels.get(name, name), _show(name, value, codes)))
    resolution = evidence.get("resolution")
    if isinstance(resolution, dict):
        side.resolution = {
            "status": _RESOLUTION_ZH.get(resolution.get("status") or "", resolution.get("status") or "—"),
            "suggested_id": resolution.get("suggested_id"),
            "method": MATCH_ZH.get(resolution.get("method") or "", resolution.get("method")),
            "score": resolution.get("score"),
            "candidates": [c for c in resolution.get("candidates") or [] if isinstance(c, dict)],
        }
    return side
