"""Long tests (`@pytest.mark.slow`) run only when asked for: `python -m pytest -m slow`.

Every test runs without the terminal's size in the environment: the CLI lays its tables out to
COLUMNS when it is set, and pytest-xdist's workers set it to 80, as a user's shell may.

Property tests have no deadline: hypothesis fails an example that takes over 200 ms by default,
which is a timed assertion, and on a shared 2-core machine under pytest-xdist a first example
that loads a module or compiles a polars expression took 323 ms (test_ids, a fresh clone's
run). Speed is measured by benchmarks/, never asserted by a test."""

from __future__ import annotations

import pytest
from hypothesis import settings

settings.register_profile("crosscheck", deadline=None)
settings.load_profile("crosscheck")


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
