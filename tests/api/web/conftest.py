"""The pages' tests drive Debian's chromium (headless, through Playwright) against a real
`crosscheck serve` process (live.py). Without chromium they are skipped — unless CI is set (CI=true,
as CI services set it; 0 or false count as unset), where a missing browser is a failure (`.ci/run`
installs it).

A failing test leaves a full-page screenshot of every page it had open, and the server's log, in
$CROSSCHECK_TEST_ARTIFACTS (default /tmp/crosscheck-artifacts).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .live import Live, chromium, live_server

ARTIFACTS = Path(os.environ.get("CROSSCHECK_TEST_ARTIFACTS", Path(tempfile.gettempdir()) / "crosscheck-artifacts"))
DESKTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}


@pytest.fixture(scope="session")
def browser_path() -> str:
    path = chromium()
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(message + " — CI must run the browser tests")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser(browser_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=browser_path, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # After the browser: without chromium the whole setup is skipped, not paid for.
    with live_server(tmp_path_factory.mktemp("live")) as live:
        yield live


@pytest.fixture(scope="session")
def uploaded(server: Live) -> Live:
    """Both townships' flags exist: each caseworker uploaded the roll through the API (rows of
    other townships are refused, so each upload makes flags in its own township only)."""
    server.upload("cw_b")
    server.upload("cw_a")
    return server


class Browse:
    """Opens pages in fresh browser contexts (one per user: its own cookies); remembers them all
    for the failure screenshots."""

    def __init__(self, browser: Any, server: Live) -> None:
        self.browser, self.server, self.contexts = browser, server, []  # type: ignore[var-annotated]

    def __call__(self, user: str | None = None, viewport: dict[str, int] | None = None) -> Any:
        context = self.browser.new_context(viewport=viewport or DESKTOP, locale="zh-CN", accept_downloads=True)
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        page = context.new_page()
        if user is not None:
            sign_in(page, self.server, user)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def sign_in(page: Any, server: Live, user: str) -> None:
    page.goto(server.base + "/login")
    page.get_by_label("令牌").fill(server.tokens[user])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(server.base + "/flags")


@pytest.fixture
def browse(browser: Any, server: Live) -> Iterator[Callable[..., Any]]:
    opened = Browse(browser, server)
    yield opened
    opened.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    opened = getattr(item, "funcargs", {}).get("browse")
    if not isinstance(opened, Browse):
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", item.nodeid)[-120:]
    saved = []
    for c, context in enumerate(opened.contexts):
        for p, page in enumerate(context.pages):
            target = ARTIFACTS / f"{stem}-{c}-{p}.png"
            try:
                page.screenshot(path=str(target), full_page=True)
                saved.append(f"{target}  ({page.url})")
            except Exception as error:  # a crashed page: say so, keep the report
                saved.append(f"{target}: no screenshot ({error})")
    if opened.server.log.exists():
        shutil.copy(opened.server.log, ARTIFACTS / f"{stem}-server.log")
        saved.append(str(ARTIFACTS / f"{stem}-server.log"))
    report.sections.append(("screenshots", "\n".join(saved)))
