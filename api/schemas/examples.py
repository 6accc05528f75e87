"""The examples on the OpenAPI page (/docs): one township of 徐州市云龙区 (320303001), as of
2026-06-30, as the engine and the store emit them. tests/api/test_openapi.py validates each
against its model and its published schema, so that none of them can drift from what the API
answers."""

from __future__ import annotations

from typing import Any

from engine.rules import RULES
from store.lifecycle import STATUS_ZH

__all__ = ["ID_EXAMPLE", "ID_EXAMPLE_X", "ERROR_EXAMPLES", "DECEASED_FLAG", "VEHICLE_FLAG", "INCOME_FLAG_MASKED",
           "SKIPPED", "SNAPSHOT_DATES", "STORED_VEHICLE", "STORED_INCOME_MASKED", "EVENTS", "PROBLEMS", "WARNINGS", "RUN",
           "RUN_RULES", "AUDIT", "rule", "rule_out"]

ID_EXAMPLE = "320303198001011235"  # a valid ID (check character included)
ID_EXAMPLE_X = "32030319741011445X"

ERROR_EXAMPLES: dict[int, list[dict[str, Any]]] = {
    400: [{"error": "bad_request", "detail": "There was an error parsing the body"}],
    401: [{"error": "not_authenticated", "detail": "令牌无效 the token is unknown or its user is disabled"}],
    403: [{"error": "forbidden", "detail": "角色 caseworker 无权执行此操作 (role 'caseworker' may not runs write)"}],
    404: [{"error": "not_found", "detail": "没有编号为 999 的预警 (no flag 999)"}],
    409: [{"error": "review_not_allowed",
           "detail": "预警 47 当前状态为“已排除”，不能入户核查 (flag 47 is dismissed: visit applies only to flags "
                     "that are open, assigned, visited, appealed)"}],
    413: [{"error": "too_large", "detail": "上传文件过大 the upload is larger than 50 MB (CROSSCHECK_MAX_UPLOAD_MB)"}],
    422: [{"error": "invalid_request", "detail": [
              {"field": "members[0].region_code", "in": "body", "message": "String should match pattern '^[0-9]{6,12}$'"},
              {"field": "members[1].benefit_monthly", "in": "body", "message": "Input should be a valid number"}]},
          {"error": "invalid_input", "detail": {
              "message": "vehicles.csv: 表头不符合“车辆”的要求 (header does not fit vehicles)",
              "problems": [{"file": "vehicles.csv", "row": None, "column": "plate", "column_zh": "号牌号码", "value": None,
                            "message": "缺少必填列“号牌号码”，可用的表头：plate, 号牌号码, 车牌号 "
                                       "(required column plate is missing; accepted headers: plate, 号牌号码, 车牌号)"}]}}],
    503: [{"error": "busy", "detail": "存储正忙 the store is busy: another run or review holds its lock and did not finish "
                                      "within 30 s. Nothing was written; try again when it has finished "
                                      "(CROSSCHECK_LOCK_TIMEOUT sets how long to wait)."}],
}


def rule(rule_id: str) -> dict[str, Any]:
    """A flag's fields that come from the rule catalogue."""
    rule = RULES[rule_id]
    return {"rule_id": rule.id, "rule_label_zh": rule.label_zh, "rule_label_en": rule.label_en,
            "severity": rule.severity, "cadence": rule.cadence, "level": rule.level}


# What POST /checks finds for the CheckIn example: 张三 died in January and is still paid.
DECEASED_FLAG = {
    **rule("deceased"), "program": "dibao", "household_id": "APP-2026-000123", "id_number": ID_EXAMPLE,
    "roll_id_number": ID_EXAMPLE, "name": "张三", "region_code": "320303001", "source": "deaths,hukou",
    "match_method": "exact", "match_score": 100.0,
    "evidence": {"records": [{"record_source": "deaths", "date": "2026-01-04"},
                             {"record_source": "hukou", "date": "2026-01-04"}],
                 "death_date": "2026-01-04", "overpayment": 4400.0},
    "overpayment": 4400.0, "as_of": "2026-06-30", "flag_id": None,
}
VEHICLE_FLAG = {
    **rule("vehicle_owned"), "program": "dibao", "household_id": "320303000000054", "id_number": ID_EXAMPLE_X,
    "roll_id_number": ID_EXAMPLE_X, "name": "周庆俊", "region_code": "320303001005", "source": "vehicles",
    "match_method": "exact", "match_score": 100.0,
    "evidence": {"records": [{"id_number": ID_EXAMPLE_X, "plate": "苏C8K2M7", "vehicle_type": "car",
                              "purchase_price": 156400.0, "status": "normal"}]},
    "overpayment": None, "as_of": "2026-06-30", "flag_id": 47,
}
# As an auditor sees a flag: IDs masked, in the evidence too.
INCOME_FLAG_MASKED = {
    **rule("income_over_standard"), "program": "dibao", "household_id": "320303000000087",
    "id_number": "320303********4029", "roll_id_number": "320303********4029", "name": "李秀英",
    "region_code": "320303001002", "source": "pensions,payroll", "match_method": "exact", "match_score": 100.0,
    "evidence": {"records": [{"id_number": "320303********4029", "component": "pension", "detail": "employee",
                              "amount": 2549.07},
                             {"id_number": "320303********3026", "component": "declared_income", "detail": None,
                              "amount": 194.5}],
                 "total": 2743.57, "household_size": 3, "per_capita": 914.52, "standard": 880.0},
    "overpayment": None, "as_of": "2026-06-30", "flag_id": 52,
}


SKIPPED = {"rule_id": "assets_over_limit", "reason": "source deposits not provided"}


# The snapshot date of each source held (deposits are not: assets_over_limit is skipped).
SNAPSHOT_DATES = {"roll": "2026-06-30", "hukou": "2026-06-30", "deaths": "2026-06-30", "medical": "2026-06-25",
                   "vehicles": "2026-06-15", "farm_machinery": "2026-04-10", "property": "2026-06-15",
                   "housing_fund": "2026-06-15", "prisoners": "2026-06-01", "cadre_relatives": "2026-04-01",
                   "payroll": "2026-06-01", "pensions": "2026-06-30"}


STORED_VEHICLE = {
    **VEHICLE_FLAG, "id": 47, "status": "assigned", "status_zh": STATUS_ZH["assigned"],
    "status_at": "2026-07-02T09:15:00Z", "opened_at": "2026-07-01T02:00:41Z", "days_open": 14, "overdue": False,
    "assignee": "王芳", "first_run_id": 12, "last_run_id": 12,
}
STORED_INCOME_MASKED = {
    **INCOME_FLAG_MASKED, "id": 52, "status": "open", "status_zh": STATUS_ZH["open"],
    "status_at": "2026-01-05T02:00:37Z", "opened_at": "2026-01-05T02:00:37Z", "days_open": 191, "overdue": True,
    "assignee": None, "first_run_id": 3, "last_run_id": 12,
}


EVENTS = [
    {"id": 47, "kind": "raised", "kind_zh": "新发现", "at": "2026-07-01T02:00:41Z", "by": "system", "run_id": 12,
     "detail": {"evidence": VEHICLE_FLAG["evidence"]}},
    {"id": 331, "kind": "assigned", "kind_zh": "分派", "at": "2026-07-02T09:15:00Z", "by": "李建国", "run_id": None,
     "detail": {"to": "王芳"}},
    {"id": 358, "kind": "visited", "kind_zh": "入户核查", "at": "2026-07-08T15:30:12Z", "by": "王芳", "run_id": None,
     "detail": {"living": "两间平房，车辆停放在院内", "note": "入户核查，户主称车辆为亲戚借用", "income": 650.0,
                "expenditure": 900.0}},
]


WARNINGS = [
    {"file": "云龙区名册2026-06.xlsx", "row": 87, "column": "id_number", "column_zh": "身份证号", "value": "3.20303E+17",
     "message": "身份证号被 Excel 按数字格式破坏（科学计数法或末三位变为 000），请将该列设为“文本”格式后重新导出 "
                "(ID destroyed by Excel's number format: re-export the column as text)"},
    {"file": "云龙区名册2026-06.xlsx", "row": 1837, "column": None, "column_zh": None, "value": None,
     "message": "合计行，已跳过 (a totals row (合计/小计): passed over, not a record)"},
]
PROBLEMS = [
    {"file": "云龙区名册2026-06.xlsx", "row": 15, "column": "benefit_monthly", "column_zh": "月保障金额", "value": "880元/月",
     "message": "金额不是有效数字 (amount is not a number)"},
    {"file": "云龙区名册2026-06.xlsx", "row": 212, "column": "region_code", "column_zh": "行政区划代码",
     "value": "320311004", "message": "行政区划 320311004 不在您的辖区 320303 内 (outside your region 320303)"},
]


RUN = {"id": 13, "trigger": "api", "status": "completed", "as_of": "2026-06-30", "started_at": "2026-07-01T02:00:00Z",
        "finished_at": "2026-07-01T02:00:41Z", "found": 41, "raised": 6, "reopened": 1, "seen": 34, "cleared": 3,
        "error": None}


RUN_RULES = [
    {"rule_id": "deceased", "outcome": "ran", "reason": None, "flags": 10, "same_as_run_id": None},
    {"rule_id": "hukou_not_found", "outcome": "unchanged", "reason": "inputs unchanged since run 12 输入未变化",
     "flags": None, "same_as_run_id": 12},
    {"rule_id": "assets_over_limit", "outcome": "skipped", "reason": "source deposits not provided (no snapshot held)",
     "flags": None, "same_as_run_id": None},
]


def rule_out(rule_id: str) -> dict[str, Any]:
    """A catalogue entry as GET /rules answers it."""
    rule = RULES[rule_id]
    return {"id": rule.id, "label_zh": rule.label_zh, "label_en": rule.label_en, "cadence": rule.cadence,
            "programs": list(rule.programs) if rule.programs is not None else None, "level": rule.level,
            "severity": rule.severity, "sources": [*rule.sources, *rule.optional_sources], "condition": rule.condition}


AUDIT = [
    {"id": 5120, "at": "2026-07-08T15:30:12Z", "user_name": "王芳", "role": "caseworker", "address": "10.32.3.41",
     "method": "POST", "path": "/api/v1/flags/47/events", "action": "write", "status_code": 201,
     "detail": {"route": "/flags/{flag_id}/events", "ms": 18.4}},
    {"id": 5119, "at": "2026-07-08T15:29:50Z", "user_name": "王芳", "role": "caseworker", "address": "10.32.3.41",
     "method": "GET", "path": "/api/v1/flags?status=assigned&limit=50", "action": "read", "status_code": 200,
     "detail": {"route": "/flags", "ms": 42.7}},
]


