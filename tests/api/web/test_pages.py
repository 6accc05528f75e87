"""The caseworkers' pages in a real browser (chromium, headless) against a real server.

The scenario a township caseworker goes through — sign in, upload the GBK roll, see the
validation problems and the flags, open a household, record the home visit, dismiss a flag, see
its status change — then what must be refused: another township's flags and households (not
found, never listed), the supervisor's decisions, forms without the session's CSRF token; then
the supervisor's dashboard and the downloads, the audit log, keyboard and tablet use.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import TABLET
from .live import AS_OF, Live

BATCH_SECONDS = 120_000  # ms: a batch of 200 households finishes well within this


def flag_rows(page: Any) -> list[dict[str, str]]:
    """The list's rows once the page has loaded: call it after the navigation has begun (a
    click that submits a form only starts one; expect the new URL first)."""
    page.wait_for_load_state("load")
    return page.locator("table.flags tbody tr").evaluate_all(
        "rows => rows.map(r => ({flag: r.dataset.flag, region: r.dataset.region}))")


def csrf_of(page: Any) -> str:
    return page.locator("input[name=csrf]").first.input_value()


# ---- the caseworker's scenario -----------------------------------------------------------------


def test_caseworker_uploads_reviews_and_sees_the_status_change(browse: Any, server: Live) -> None:
    a = server.township_a
    page = browse()
    page.goto(server.base + "/flags")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fflags$"))  # not signed in: the sign-in page

    page.get_by_label("令牌").fill("not-a-token")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_contain_text("令牌无效")
    page.get_by_label("令牌").fill(server.tokens["cw_a"])
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(server.base + "/flags")
    expect(page.get_by_role("heading", level=1)).to_contain_text("预警列表")
    expect(page.locator("header")).to_contain_text(f"cw_a（低保专干 · 辖区 {a}）")

    # 上传名册: the GBK roll of the whole city, as the fixture generator wrote it
    page.get_by_role("link", name="上传名册").click()
    page.get_by_label("名册文件").set_input_files(str(server.roll))
    page.get_by_label("核对基准日").fill(AS_OF)
    page.get_by_role("button", name="上传并核对").click()
    expect(page).to_have_url(re.compile(r"/batches/\d+$"))
    expect(page.locator("#batch-status progress")).to_be_visible()
    # the page follows the batch by itself (it polls its status) until it is done
    expect(page.locator("[data-batch-status]")).to_have_attribute("data-batch-status", "completed",
                                                                  timeout=BATCH_SECONDS)
    expect(page.locator("#batch-status")).not_to_have_attribute("aria-busy", "true")

    # the validation problems, row by row with the original values: the other townships' rows
    problems = page.locator("section[aria-labelledby=problems-h] table.problems tbody tr")
    expect(problems.first).to_be_visible()
    refused = page.locator("section[aria-labelledby=problems-h] table.problems tbody tr", has_text="不在您的辖区")
    assert refused.count() > 10
    first = refused.first.locator("td").all_inner_texts()
    assert first[0] == "roll.csv" and int(first[1]) >= 2 and "行政区划代码" in first[2]
    assert not first[3].startswith(a) and first[3].isdigit(), first  # the value as the file has it
    # rows kept with a warning (invalid IDs, flagged id_invalid), folded away until asked for
    warned = page.locator("section[aria-labelledby=warnings-h] tbody tr", has_text="身份证号")
    expect(warned.first).to_be_hidden()
    page.locator("section[aria-labelledby=warnings-h] summary").click()
    expect(warned.first).to_be_visible()

    # the result: the flags this upload found, in this township only
    found = page.locator("section[aria-labelledby=batch-flags-h] tbody tr")
    expect(found.first).to_be_visible()
    assert int(page.locator("[data-batch-flags]").inner_text()) == found.count() > 0
    page.get_by_role("link", name="在预警列表中查看").click()
    expect(page).to_have_url(re.compile(r"/flags\?status=all"))
    rows = flag_rows(page)
    assert rows and all(r["region"].startswith(a) for r in rows)

    # 家庭详情: open a household from the list
    page.locator("table.flags tbody tr a[href^='/households/']").first.click()
    expect(page).to_have_url(re.compile(r"/households/\d+"))
    card = page.locator("article.flag-card", has=page.locator("form.visit")).first
    flag_id = card.get_attribute("data-flag")
    expect(card.locator(".side.roll")).to_contain_text("名册身份证号")  # the roll's side …
    expect(card.locator(".side.source h4")).to_contain_text("比对数据")  # … against the source's
    expect(card.locator(".history")).to_contain_text("新发现")

    # a second tab on the same household keeps the old forms (used below)
    stale = page.context.new_page()
    stale.goto(page.url)

    # 三核查: the home visit
    card.get_by_label("核实月收入（元）").fill("650")
    card.get_by_label("核实月支出（元）").fill("900")
    card.get_by_label("生活状况").fill("两间平房，家中无车辆")
    card.get_by_role("button", name="记录入户核查").click()
    expect(page.get_by_role("status")).to_contain_text(f"预警 {flag_id}：已记录入户核查")
    card = page.locator(f"#flag-{flag_id}")
    expect(card.locator("[data-status]")).to_have_text("已入户核查")
    visit = card.locator(".timeline li[data-event=visited]")
    expect(visit).to_contain_text("¥650.00")
    expect(visit).to_contain_text("两间平房，家中无车辆")
    expect(visit).to_contain_text("cw_a")

    # the outcome: dismissed with a reason
    card.get_by_label("排除理由").fill("车辆已于2025年过户，提供了过户证明")
    card.get_by_role("button", name="排除").click()
    expect(page.get_by_role("status")).to_contain_text(f"预警 {flag_id}：已排除")
    expect(card.locator("[data-status]")).to_have_text("已排除")
    expect(card.locator(".timeline li[data-event=dismissed]")).to_contain_text("车辆已于2025年过户")
    expect(card.locator("form")).to_have_count(1)  # only 重新打开 is left (under 其他操作)

    # the list follows: no longer among the flags to review, listed as dismissed
    page.goto(server.base + "/flags")
    assert flag_id not in {r["flag"] for r in flag_rows(page)}
    page.get_by_label("处理状态").select_option("dismissed")
    page.get_by_role("button", name="筛选").click()
    expect(page).to_have_url(re.compile(r"[?&]status=dismissed(&|$)"))
    assert flag_id in {r["flag"] for r in flag_rows(page)}

    # the old tab's visit form: the store refuses, the page says why (no traceback)
    stale_card = stale.locator(f"#flag-{flag_id}")
    stale_card.get_by_label("生活状况").fill("再次入户")
    with stale.expect_response(re.compile(rf"/flags/{flag_id}/review$")) as answer:
        stale_card.get_by_role("button", name="记录入户核查").click()
    assert answer.value.status == 409
    expect(stale.locator(f"#flag-{flag_id} [data-error]")).to_contain_text("当前状态为“已排除”")
    expect(stale.locator(f"#flag-{flag_id} [data-error]")).to_be_in_viewport()  # not left far below the top
    expect(stale.get_by_role("alert").first).to_contain_text(f"预警 {flag_id}")
    expect(stale.locator(f"#flag-{flag_id} [data-status]")).to_have_text("已排除")
    assert "Traceback" not in stale.content()


# ---- region scope and permissions ---------------------------------------------------------------


def test_another_townships_flags_are_not_found(browse: Any, uploaded: Live) -> None:
    server, a, b = uploaded, uploaded.township_a, uploaded.township_b
    theirs = server.flags("cw_b")
    assert theirs and all(f["region_code"].startswith(b) for f in theirs)
    their_flag, their_household = theirs[0]["id"], theirs[0]["household_id"]

    page = browse("cw_a")
    page.goto(server.base + "/flags?status=all")
    rows = flag_rows(page)
    assert rows and all(r["region"].startswith(a) for r in rows)
    assert not {str(f["id"]) for f in theirs} & {r["flag"] for r in rows}
    assert b not in page.get_by_label("乡镇(街道)").inner_text()  # not even offered as a filter

    page.goto(server.base + f"/flags?status=all&township={b}")
    expect(page.locator("[data-total]")).to_have_text("0")
    assert flag_rows(page) == []

    # "/households/" names no household: not every flag of the region under one title
    for path in (f"/flags/{their_flag}", f"/households/{their_household}", "/households/", "/households/%20"):
        answer = page.goto(server.base + path)
        assert answer is not None and answer.status == 404, path
        expect(page.get_by_role("heading", level=1)).to_have_text("未找到")
        expect(page.get_by_role("alert")).to_contain_text("不在您的辖区内")

    # a review posted to their flag is not found either, and changes nothing
    page.goto(server.base + "/flags")
    answer = page.request.post(server.base + f"/flags/{their_flag}/review",
                               form={"csrf": csrf_of(page), "action": "visit", "living": "越权"})
    assert answer.status == 404
    assert next(f for f in server.flags("cw_b") if f["id"] == their_flag)["status"] == theirs[0]["status"]

    # their upload's page too
    answer = page.goto(server.base + f"/batches/{server.batches['cw_b']}")
    assert answer is not None and answer.status == 404


def test_stop_and_recover_are_a_supervisors_decision(browse: Any, uploaded: Live) -> None:
    server = uploaded
    page = browse("cw_a")
    mine = server.flags("cw_a", status="open")
    page.goto(server.base + f"/flags/{mine[-1]['id']}")  # a flag lives on its household's page
    card = page.locator(f"#flag-{mine[-1]['id']}")
    expect(card).to_be_visible()
    options = card.get_by_label("处理方式").locator("option").all_inner_texts()
    assert options == ["减发"]
    expect(card).to_contain_text("停发、追缴须由审核主管确认")
    answer = page.request.post(server.base + f"/flags/{mine[-1]['id']}/review",
                               form={"csrf": csrf_of(page), "action": "confirm", "confirm_action": "stop"})
    assert answer.status == 403
    assert "须由审核主管确认" in answer.text()


def test_an_auditor_reads_masked_ids_and_acts_on_nothing(browse: Any, uploaded: Live) -> None:
    server = uploaded
    page = browse("aud")
    expect(page.locator("header nav")).not_to_contain_text("上传名册")
    page.goto(server.base + "/flags?status=all")
    ids = page.locator("table.flags td.id").all_inner_texts()
    assert ids and all("*" in i for i in ids if len(i) > 10), ids
    page.locator("table.flags tbody tr a[href^='/households/']").first.click()
    expect(page.locator("article.flag-card").first).to_be_visible()
    expect(page.locator("form.review-form")).to_have_count(0)
    assert not re.search(r"\d{17}[\dX]", page.locator("main").inner_text())  # no ID in full anywhere
    for path in ("/upload", f"/runs/{1}/report.xlsx"):
        answer = page.goto(server.base + path)
        assert answer is not None and answer.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("无权限")


def test_forms_need_the_sessions_csrf_token_and_the_cookie_is_guarded(browse: Any, uploaded: Live) -> None:
    server = uploaded
    page = browse("cw_a")
    cookie = next(c for c in page.context.cookies() if c["name"] == "crosscheck_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script can read the token

    flag_id = server.flags("cw_a", status="open")[0]["id"]
    form = {"action": "visit", "living": "伪造"}
    assert page.request.post(server.base + f"/flags/{flag_id}/review", form=form).status == 403
    assert page.request.post(server.base + f"/flags/{flag_id}/review", form={**form, "csrf": "0" * 64}).status == 403
    answer = page.request.post(server.base + f"/flags/{flag_id}/review", form={**form, "csrf": csrf_of(page)},
                               headers={"Origin": "https://elsewhere.example"})
    assert answer.status == 403
    assert next(f for f in server.flags("cw_a") if f["id"] == flag_id)["status"] == "open"

    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(server.base + "/login")
    assert not [c for c in page.context.cookies() if c["name"] == "crosscheck_session"]
    page.goto(server.base + "/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"))


# ---- the supervisor, the downloads, the audit log ------------------------------------------------


def test_supervisor_dashboard_recovery_and_report(browse: Any, uploaded: Live) -> None:
    server, a, b = uploaded, uploaded.township_a, uploaded.township_b
    owed = [f for f in server.flags("sup", status="open") if f["overpayment"]]
    assert owed, "the fixture city has a death with an overpayment"
    flag = owed[0]

    page = browse("sup")
    page.goto(server.base + f"/flags/{flag['id']}")
    card = page.locator(f"#flag-{flag['id']}")
    assert card.get_by_label("处理方式").locator("option").all_inner_texts() == ["停发", "减发", "追缴"]
    card.get_by_label("处理方式").select_option("recover")
    card.get_by_label("说明").fill("死亡后多发，责令退回")
    card.get_by_role("button", name="确认").click()
    expect(card.locator("[data-status]")).to_have_text("已确认")
    expect(card.locator(".timeline li[data-event=confirmed]")).to_contain_text("追缴")

    page.get_by_role("link", name="主管看板").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("主管看板")
    heat = page.locator("table.heat")
    expect(heat.get_by_role("link", name=a, exact=True)).to_be_visible()
    expect(heat.get_by_role("link", name=b, exact=True)).to_be_visible()
    expect(page.locator("dl.kpis")).to_contain_text(f"¥{flag['overpayment']:,.2f}")  # confirmed for recovery
    expect(page.locator("svg[role=img] rect.new").first).to_be_visible()  # flags per run
    assert page.locator("svg[role=img] g.bar").count() >= 2  # one bar per upload

    with page.expect_download() as download:
        page.get_by_role("link", name="比对报告（XLSX）").first.click()
    sheets = _xlsx(download.value)
    assert "预警明细" in sheets and "追缴" in sheets
    assert all(str(code).startswith(server.county) for code in _column(sheets["预警明细"], "行政区划代码"))

    # the township cell of the heat table leads to that township's flags of that rule
    heat.locator("td a").first.click()
    expect(page).to_have_url(re.compile(r"/flags\?township=\d{9}&rule=\w+"))
    assert flag_rows(page)


def test_flags_download_is_the_lists_flags(browse: Any, uploaded: Live) -> None:
    server = uploaded
    page = browse("cw_a")
    page.goto(server.base + "/flags?status=all")
    shown = int(page.locator("[data-total]").inner_text())
    with page.expect_download() as download:
        page.get_by_role("link", name="下载 XLSX").click()
    assert download.value.suggested_filename.endswith(".xlsx")
    sheets = _xlsx(download.value)
    assert set(sheets) >= {"预警明细", "汇总"}
    codes = _column(sheets["预警明细"], "行政区划代码")
    assert len(codes) == shown and all(str(c).startswith(server.township_a) for c in codes)


def test_page_requests_are_in_the_audit_log(browse: Any, uploaded: Live) -> None:
    server = uploaded
    page = browse("cw_b")
    household = server.flags("cw_b")[0]["household_id"]
    page.goto(server.base + f"/households/{household}")
    page.goto(server.base + "/dashboard")
    with server.api("aud") as client:
        entries = client.get("/audit", params={"user": "cw_b", "limit": 1000}).json()["items"]
    paths = {(e["method"], e["path"], e["action"], e["status_code"]) for e in entries}
    assert ("GET", f"/households/{household}", "read", 200) in paths
    assert ("GET", "/dashboard", "read", 200) in paths
    assert ("POST", "/login", "write", 303) in paths
    assert all(e["role"] == "caseworker" for e in entries)


# ---- keyboard, tablet, nothing from outside -------------------------------------------------------


def test_keyboard_only(browse: Any, uploaded: Live) -> None:
    server = uploaded
    page = browse()
    page.goto(server.base + "/login")
    expect(page.locator("#token")).to_be_focused()  # autofocus: no click needed
    page.keyboard.type(server.tokens["cw_a"])
    page.keyboard.press("Enter")
    expect(page).to_have_url(server.base + "/flags")

    page.keyboard.press("Tab")
    focused = page.evaluate("({text: document.activeElement.textContent, "
                            "outline: getComputedStyle(document.activeElement).outlineStyle})")
    assert focused["text"] == "跳到正文" and focused["outline"] != "none"  # visible focus
    for _ in range(80):  # Tab on to the first household of the list
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('table.flags a[href^=\"/households/\"]')"):
            break
    else:
        pytest.fail("no household link of the list is reachable with Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/households/\d+"))
    unlabelled = page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.name)""")
    assert unlabelled == []


PAGES = ("/flags", "/upload", "/dashboard", "/flags?status=all&page=1")


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, TABLET], ids=["1366x768", "tablet"])
def test_fits_the_screen_and_loads_nothing_from_outside(browse: Any, uploaded: Live, viewport: dict[str, int]) -> None:
    server = uploaded
    page = browse("cw_a", viewport=viewport)
    requested: list[str] = []
    errors: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    household = server.flags("cw_a")[0]["household_id"]
    for path in (*PAGES, f"/households/{household}", f"/batches/{server.batches['cw_a']}"):
        answer = page.goto(server.base + path)
        assert answer is not None and answer.status == 200, path
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (path, width)  # no sideways scrolling of the page (tables scroll inside)
    outside = [url for url in requested if not url.startswith(server.base) and not url.startswith("data:")]
    assert outside == []
    assert errors == []  # nothing failed to load, nothing refused by the pages' Content-Security-Policy


# ---- members from the roll snapshot --------------------------------------------------------------


def test_members_come_from_the_roll_snapshot_when_one_is_held(browse: Any, uploaded: Live) -> None:
    server = uploaded
    household = server.flags("cw_a")[0]["household_id"]
    page = browse("cw_a")
    page.goto(server.base + f"/households/{household}")
    server.cli("ingest", "roll", str(server.roll), "--snapshot-date", AS_OF)
    page.reload()
    members = page.locator("section[aria-labelledby=members-h] tbody tr")
    expect(members.first).to_be_visible()
    relations = members.locator("td:nth-child(3)").all_inner_texts()
    assert "户主" in relations
    expect(page.locator("section[aria-labelledby=members-h]")).not_to_contain_text("取自预警记录")
    # A flag whose ID was mended names the person found; the roll's side still shows their row.
    mended = next(f for f in server.flags("cw_a") if f["match_method"] in ("repaired", "fuzzy"))
    page.goto(server.base + f"/households/{mended['household_id']}")
    expect(page.locator(f"#flag-{mended['id']}")).to_contain_text("月保障金额")


# ---- helpers -----------------------------------------------------------------------------------


def _xlsx(download: Any) -> dict[str, list[tuple[Any, ...]]]:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(download.path().read_bytes()), read_only=True)
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets}


def _column(rows: list[tuple[Any, ...]], header: str) -> list[Any]:
    index = list(rows[0]).index(header)
    return [row[index] for row in rows[1:] if any(v is not None for v in row)]
