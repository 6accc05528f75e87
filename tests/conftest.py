"""Long tests (`@pytest.mark.slow`) run only when asked for: `python -m pytest -m slow`.

Every test runs without the terminal's size in the environment: the CLI lays its tables out to
COLUMNS when it is set, and pytest-xdist's workers set it to 80, as a user's shell may."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="long: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
