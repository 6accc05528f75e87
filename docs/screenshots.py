"""Screenshots of the caseworkers' pages at 1366×768, for the README:

    python docs/screenshots.py            # writes docs/screenshots/*.png

The same setup as the browser tests (tests/api/web/live.py): the fixture generator's city, its
sources ingested, users added, `crosscheck serve` on a free port. Here the roll is ingested too
and one run started (`crosscheck runs start`), so that the household page lists the members from
the roll and the dashboard's chart has several runs. Needs Debian's chromium and a Chinese font
(`apt-get install -y chromium fonts-wqy-microhei`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.web.live import AS_OF, Live, chromium, live_server

OUT = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}


def sign_in(browser, live: Live, user: str):  # type: ignore[no-untyped-def]
    page = browser.new_context(viewport=VIEWPORT, locale="zh-CN").new_page()
    page.goto(live.base + "/login")
    page.get_by_label("令牌").fill(live.tokens[user])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(live.base + "/flags")
    return page


def shoot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(150)
    page.screenshot(path=str(OUT / name))
    print(OUT / name)


def main() -> None:
    from playwright.sync_api import sync_playwright

    path = chromium()
    if path is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium fonts-wqy-microhei")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, live_server(Path(work)) as live, sync_playwright() as playwright:
        live.cli("ingest", "roll", str(live.roll), "--snapshot-date", AS_OF)
        live.cli("runs", "start", "--as-of", AS_OF)
        live.upload("cw_b")
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=["--lang=zh-CN"])

        page = browser.new_context(viewport=VIEWPORT, locale="zh-CN").new_page()
        page.goto(live.base + "/login")
        shoot(page, "login.png")

        page = sign_in(browser, live, "cw_a")
        page.get_by_role("link", name="上传名册").click()
        page.get_by_label("名册文件").set_input_files(str(live.roll))
        page.get_by_label("核对基准日").fill(AS_OF)
        shoot(page, "upload.png")
        page.get_by_role("button", name="上传并核对").click()
        page.locator("[data-batch-status=completed]").wait_for(timeout=120_000)
        shoot(page, "batch.png")
        page.evaluate("document.querySelector('#problems-h').scrollIntoView()")
        shoot(page, "batch-problems.png")

        page.goto(live.base + "/flags")
        shoot(page, "flags.png")

        flag = live.flags("cw_a", status="open")[0]
        page.goto(live.base + f"/flags/{flag['id']}")
        card = page.locator(f"#flag-{flag['id']}")
        card.get_by_label("核实月收入（元）").fill("650")
        card.get_by_label("核实月支出（元）").fill("1200")
        card.get_by_label("生活状况").fill("两间平房，老人独居，未见车辆")
        card.get_by_role("button", name="记录入户核查").click()
        page.wait_for_url("**/households/**")
        shoot(page, "household-flag.png")  # the page opens at the flag just reviewed
        page.evaluate("window.scrollTo(0, 0)")
        shoot(page, "household.png")

        page = sign_in(browser, live, "sup")
        owed = [f for f in live.flags("sup", status="open") if f["overpayment"]]
        if owed:
            page.goto(live.base + f"/flags/{owed[0]['id']}")
            card = page.locator(f"#flag-{owed[0]['id']}")
            card.get_by_label("处理方式").select_option("recover")
            card.get_by_label("说明").fill("死亡后多发，责令退回")
            card.get_by_role("button", name="确认").click()
            page.wait_for_url("**/households/**")
        page.goto(live.base + "/dashboard")
        shoot(page, "dashboard.png")
        page.evaluate("document.querySelector('#chart-h').scrollIntoView()")
        shoot(page, "dashboard-chart.png")
        browser.close()


if __name__ == "__main__":
    main()
