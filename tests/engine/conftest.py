"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import pytest

from engine import loaders
from engine.policy import load_policy
from fixtures.generator import generate
from fixtures.writing import write


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 300-household city written as bureaus deliver it (`--format mixed`), loaded."""
    out = tmp_path_factory.mktemp("city")
    generated = generate(300, seed=11)
    paths = write(generated, out, formats="mixed")
    as_of = generated.as_of
    roll = loaders.load(paths["roll"], "roll", as_of).frame
    sources = {key: done.frame for key, done in loaders.load_sources(out / "sources", as_of)[0].items()}
    return {"roll": roll, "sources": sources, "as_of": as_of, "policy": load_policy(paths["policy"]),
            "truth": generated.truth, "dir": out}
