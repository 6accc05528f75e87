"""预警列表 and 家庭详情: the flags of the user's region by priority, one household with every flag's
evidence and history, the 三核查 visit and the outcome, and the flags as XLSX.

Reading and reviewing go through the API's own functions (api.routes.flags: region scope, ID
masking, the supervisor's decisions) after the same permission check, so that a page can show
nothing and do nothing the API would refuse.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import polars as pl
import sqlalchemy as sa
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from engine import ids
from engine.errors import CrosscheckError, NotFound
from engine.rules import RULES
from schemas import PROGRAMS
from store import snapshots
from store.flags import SEVERITIES, FlagFilter, flag_query
from store.lifecycle import CONFIRM_ACTIONS, NEEDS_PERSON, REVIEWS, STATUS_ZH
from store.models import Flag, utcnow

from .. import access
from ..deps import AppState, Principal
from ..errors import status_of
from ..routes import flags as api_flags
from ..schemas import EventIn, RowId
from .evidence import sides
from .render import PageRoute, page, xlsx_download
from .session import PageUser, check_form, need

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
XLSX_MAX = 100_000  # flags in one download (a township has far fewer)
PRIORITY = (api_flags._SEVERITY_RANK, Flag.overpayment.desc().nulls_last(), Flag.opened_at, Flag.id)
TOWNSHIP = 9  # digits of region_code that make a township (乡镇/街道)
DONE_ZH = {"visited": "已记录入户核查", "confirmed": "已确认", "dismissed": "已排除", "assigned": "已分派",
           "appealed": "已记录申诉", "resolved": "已办结", "reopened": "已重新打开"}


def _state(request: Request) -> AppState:
    return request.app.state.crosscheck  # type: ignore[no-any-return]


# ---- 预警列表 -----------------------------------------------------------------------------


class Filters:
    """The list's filters as given in the query string, checked; what they select."""

    def __init__(self, rule: str, status: str, township: str, severity: str, program: str, overdue: bool,
                 run: str = "") -> None:
        self.rule, self.status, self.severity, self.program = rule, status or "needs", severity, program
        self.township, self.overdue = township.strip(), overdue
        self.problems: list[str] = []
        # A batch's page links here with its run: what that upload found, to review in the list.
        self.run = int(run) if run.isascii() and run.isdigit() and 0 < int(run) < 2**63 else None
        if run and self.run is None:
            self.problems.append(f"没有比对“{run}”")
        if self.rule and self.rule not in RULES:
            self.problems.append(f"没有规则“{self.rule}”")
            self.rule = ""
        if self.status not in ("needs", "all", *STATUS_ZH):
            self.problems.append(f"没有状态“{self.status}”")
            self.status = "needs"
        if self.severity and self.severity not in SEVERITIES:
            self.problems.append(f"没有严重程度“{self.severity}”")
            self.severity = ""
        if self.program and self.program not in PROGRAMS:
            self.problems.append(f"没有救助类别“{self.program}”")
            self.program = ""
        if self.township and not (self.township.isdigit() and len(self.township) <= 12):
            self.problems.append("乡镇(街道)须为行政区划代码的前 9 位数字")
            self.township = ""

    @property
    def statuses(self) -> list[str] | None:
        return list(NEEDS_PERSON) if self.status == "needs" else (None if self.status == "all" else [self.status])

    def store_filter(self, user: Principal, settings: Any, with_rule: bool = True) -> FlagFilter | None:
        scope = access.narrow(user.region, self.township or None)
        if scope is None:
            return None  # outside the user's region: nothing, as if it did not exist
        return FlagFilter(region=scope, rules=[self.rule] if self.rule and with_rule else None,
                          statuses=self.statuses, severities=[self.severity] if self.severity else None,
                          programs=[self.program] if self.program else None,
                          overdue_days=settings.overdue_days if self.overdue else None, run=self.run)

    def query(self, **change: Any) -> str:
        values = {"rule": self.rule, "status": self.status, "township": self.township, "severity": self.severity,
                  "program": self.program, "overdue": "1" if self.overdue else "", "run": self.run or "", **change}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _filters(rule: str = "", status: str = "", township: str = "", severity: str = "", program: str = "",
             overdue: str = "", run: str = "") -> Filters:
    return Filters(rule, status, township, severity, program, overdue in ("1", "on", "true"), run.strip())


def _townships(state: AppState, region: str) -> list[str]:
    code = sa.func.substr(Flag.region_code, 1, TOWNSHIP)
    with state.store.read() as session:
        return list(session.scalars(sa.select(code).where(Flag.region_code.startswith(region, autoescape=True))
                                    .group_by(code).order_by(code)))


def _rule_counts(state: AppState, flt: FlagFilter | None) -> list[tuple[str, str, int]]:
    if flt is None:
        return []
    query = flag_query(flt, utcnow()).with_only_columns(Flag.rule_id, sa.func.count(Flag.id)).group_by(Flag.rule_id)
    with state.store.read() as session:
        counts = dict(session.execute(query).all())
    return [(r.id, r.label_zh, counts[r.id]) for r in RULES.values() if counts.get(r.id)]


@router.get("/flags")
def flag_list(request: Request, user: PageUser, rule: str = "", status: str = "", township: str = "",
              severity: str = "", program: str = "", overdue: str = "", run: str = "",
              page_number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1) -> Response:
    need(user, "flags:read")
    state = _state(request)
    filters = _filters(rule, status, township, severity, program, overdue, run)
    result = api_flags.list_flags(
        state, user, region=filters.township or None, rule=[filters.rule] if filters.rule else None,
        status=filters.statuses, severity=[filters.severity] if filters.severity else None,
        program=[filters.program] if filters.program else None, overdue=filters.overdue, run=filters.run,
        limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE,
    )
    pages = max((result.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return page(request, user, "flags.html", flags=result.items, total=result.total, page_number=page_number,
                pages=pages, filters=filters, townships=_townships(state, user.region),
                rule_counts=_rule_counts(state, filters.store_filter(user, state.settings, with_rule=False)))


@router.get("/flags.xlsx")
def flags_xlsx(request: Request, user: PageUser, rule: str = "", status: str = "", township: str = "",
               severity: str = "", program: str = "", overdue: str = "", run: str = "") -> Response:
    """The list's flags (every page) as the engine's workbook: 预警明细 and 汇总 by township."""
    need(user, "flags:read")
    state = _state(request)
    filters = _filters(rule, status, township, severity, program, overdue, run)
    flt = filters.store_filter(user, state.settings)
    rows: list[Flag] = []
    if flt is not None:
        with state.store.read() as session:
            rows = list(session.scalars(flag_query(flt, utcnow()).order_by(*PRIORITY).limit(XLSX_MAX)))
    from engine.output import write_flags
    from engine.run import FLAG_COLUMNS

    records = []
    for flag in rows:
        rule_ = RULES.get(flag.rule_id)
        record = {c: getattr(flag, c) for c in FLAG_COLUMNS if hasattr(Flag, c)}
        record.update(rule_label_zh=rule_.label_zh if rule_ else None, rule_label_en=rule_.label_en if rule_ else None)
        records.append({**access.masked(user.role, record), "预警编号": flag.id,
                        "处理状态": STATUS_ZH.get(flag.status, flag.status), "核查人": flag.assignee})
    schema = {**FLAG_COLUMNS, "预警编号": pl.Int64, "处理状态": pl.String, "核查人": pl.String}
    frame = pl.DataFrame(records, schema=schema, orient="row") if records else pl.DataFrame(schema=schema)
    return xlsx_download(state.settings.data_dir, lambda path: write_flags(frame, path, data_sheet=False),
                         f"预警列表-{user.region}.xlsx")


# ---- 家庭详情 -----------------------------------------------------------------------------


def _members(state: AppState, user: Principal, household_id: str) -> list[dict[str, Any]]:
    """The household's rows on the latest roll snapshot within the user's region (none when no
    roll is held)."""
    with state.store.read() as session:
        held = snapshots.latest(session)
    if "roll" not in held:
        return []
    frame = (snapshots.scan(state.store, held["roll"])
             .filter((pl.col("household_id") == household_id) & pl.col("region_code").str.starts_with(user.region))
             .collect())
    if "_row" in frame.columns:
        frame = frame.sort("_row")
    return [access.masked(user.role, row, ("id_number",)) for row in frame.iter_rows(named=True)]


def _review_actions(user: Principal, status: str) -> list[str]:
    """The review actions this user may take on a flag in `status` (what the store and the
    supervisor rule allow)."""
    if not access.allowed(user.role, "flags:review"):
        return []
    return [action for action, (_, after) in REVIEWS.items() if status in after
            and (user.role == "supervisor" or not access.needs_supervisor(action, None, status))]


def _confirm_actions(user: Principal) -> list[str]:
    return [a for a in CONFIRM_ACTIONS if ("confirm", a) not in access.SUPERVISOR_ACTIONS or user.role == "supervisor"]


def _household(request: Request, user: Principal, household_id: str, status: int = 200,
               errors: dict[int, str] | None = None, form: dict[str, Any] | None = None,
               done: str | None = None) -> Response:
    state = _state(request)
    with state.store.read() as session:
        flag_ids = list(session.scalars(
            flag_query(FlagFilter(region=user.region, household=household_id), utcnow())
            .with_only_columns(Flag.id).order_by(*PRIORITY)))
    flags = [api_flags.get_flag(flag_id, state, user) for flag_id in flag_ids]
    members = _members(state, user, household_id)
    if not flags and not members:
        raise NotFound(f"没有家庭 {household_id} (no household {household_id})")
    from_flags = not members
    if from_flags:  # no roll snapshot holds it: the people the flags name
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        for flag in flags:
            key = (flag.id_number, flag.program)
            seen.setdefault(key, {"name": flag.name, "id_number": flag.id_number, "program": flag.program,
                                  "region_code": flag.region_code})
        members = list(seen.values())
    by_person = {(m.get("id_number"), m.get("program")): m for m in members}

    def member_of(flag: Any) -> dict[str, Any] | None:
        # The roll holds the ID as given; a repaired or resolved flag names the person found.
        return next((by_person[key] for key in ((flag.id_number, flag.program),
                                                 (flag.roll_id_number, flag.program),
                                                 (ids.normalize(flag.roll_id_number), flag.program))
                     if key in by_person), None)

    cards = [{"flag": flag, "side": sides(flag, member_of(flag)),
              "actions": _review_actions(user, flag.status)} for flag in flags]
    region = next((m.get("region_code") for m in members if m.get("region_code")), None)
    return page(request, user, "household.html", status=status, household_id=household_id, members=members,
                from_flags=from_flags, cards=cards, region=region, errors=errors or {}, form=form or {},
                confirm_actions=_confirm_actions(user), done=done,
                open_count=sum(1 for f in flags if f.status in NEEDS_PERSON))


@router.get("/households/{household_id:path}")
def household_page(request: Request, user: PageUser, household_id: str, done: str | None = None,
                   flag: int | None = None) -> Response:
    need(user, "flags:read")
    if not household_id.strip():  # flag_query reads an empty household as "any": every flag of the region
        raise NotFound("没有指定家庭 (no household given)")
    message = f"预警 {flag}：{DONE_ZH[done]}" if done in DONE_ZH and flag else None
    return _household(request, user, household_id, done=message)


@router.get("/flags/{flag_id}")
def flag_page(request: Request, user: PageUser, flag_id: RowId) -> Response:
    """A flag lives on its household's page."""
    need(user, "flags:read")
    flag = api_flags.get_flag(flag_id, _state(request), user)  # NotFound outside the region
    return RedirectResponse(f"/households/{quote(flag.household_id or '', safe='')}#flag-{flag_id}", status_code=303)


# Yuan as a person types them: ¥/￥ before or 元 after, full-width digits, thousands grouped by
# commas. A comma anywhere else ("1,2,3", "600，50") is a typo, not a separator to drop.
_YUAN = re.compile(r"[¥￥]?\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*元?")


def _number(label: str, text: str, most: float = 1e8) -> float | None:
    """A form's amount in yuan, or None when left empty; a ValueError in Chinese otherwise."""
    shown = text.strip()
    if not shown:
        return None
    matched = _YUAN.fullmatch(unicodedata.normalize("NFKC", shown))
    if matched is None:
        raise ValueError(f"{label}须为金额（元），如 1200 或 1,200.50，而不是“{shown}”")
    value = float(matched.group(1).replace(",", ""))
    if value < 0:
        raise ValueError(f"{label}不能为负数（“{shown}”）")
    if value > most:
        raise ValueError(f"{label}不能超过 {most:,.0f} 元（“{shown}”）")
    return value


@router.post("/flags/{flag_id}/review")
def review(request: Request, user: PageUser, flag_id: RowId, csrf: Annotated[str, Form()] = "",
           action: Annotated[str, Form()] = "", income: Annotated[str, Form()] = "",
           expenditure: Annotated[str, Form()] = "", living: Annotated[str, Form()] = "",
           note: Annotated[str, Form()] = "", confirm_action: Annotated[str, Form()] = "",
           amount: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
           to: Annotated[str, Form()] = "") -> Response:
    """Record a review action on a flag (the API's POST /flags/{id}/events), then back to the
    household; a refusal (ReviewError, a supervisor's decision…) is shown on the page."""
    check_form(request, csrf)
    need(user, "flags:review")
    state = _state(request)
    flag = api_flags.get_flag(flag_id, state, user)  # NotFound outside the region
    household_id = flag.household_id or ""
    given = {"action": action, "income": income, "expenditure": expenditure, "living": living, "note": note,
             "confirm_action": confirm_action, "amount": amount, "reason": reason, "to": to}
    try:
        body = EventIn(action=action, to=to.strip() or None, income=_number("核实月收入", income),
                       expenditure=_number("核实月支出", expenditure), living=living.strip() or None,
                       confirm_action=confirm_action or None, amount=_number("金额", amount, 1e9),
                       reason=reason.strip() or None, note=note.strip() or None)
        event = api_flags.add_event(flag_id, body, request, state, user)
    except ValueError as error:  # pydantic's ValidationError is one
        message = _invalid(error)
        return _household(request, user, household_id, status=422, errors={flag_id: message},
                          form={flag_id: given})
    except CrosscheckError as error:  # ReviewError, a supervisor's decision, a busy store
        status, _ = status_of(error)
        return _household(request, user, household_id, status=status, errors={flag_id: error.message},
                          form={flag_id: given})
    target = f"/households/{quote(household_id, safe='')}?done={event.kind}&flag={flag_id}#flag-{flag_id}"
    return RedirectResponse(target, status_code=303)


_FIELD_ZH = {"action": "操作", "income": "核实月收入", "expenditure": "核实月支出", "living": "生活状况",
             "confirm_action": "处理方式", "amount": "金额", "reason": "理由", "note": "备注", "to": "分派给"}


def _invalid(error: ValueError) -> str:
    """The form's problems in Chinese: pydantic's messages are English."""
    if not isinstance(error, ValidationError):
        return str(error)
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item.get("loc") else ""
        label, kind, context = _FIELD_ZH.get(field, field), item.get("type", ""), item.get("ctx") or {}
        if kind == "missing" and "names" in context:
            needed = "、".join(_FIELD_ZH.get(n, n) for n in str(context["names"]).split(" or "))
            parts.append(f"请填写{needed}" + ("（至少一项）" if "、" in needed else ""))
        elif kind == "missing":
            parts.append(f"请填写{label}")
        elif kind == "string_pattern_mismatch":
            parts.append(f"{label}不能只有空白")
        elif kind == "string_too_long":
            parts.append(f"{label}过长（至多 {context.get('max_length')} 字）")
        elif kind in ("literal_error", "enum"):
            parts.append(f"{label}的选项无效")
        else:
            parts.append(f"{label}：{item.get('msg', '')}")
    return "输入有误 — " + "；".join(parts)
