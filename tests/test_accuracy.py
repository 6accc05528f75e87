"""Issue 3's accuracy targets under the default noise model, measured the way
benchmarks/accuracy.py measures them (20,000 households; the benchmark's own default is 50,000).
Long: `python -m pytest -m slow`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fixtures.generator import generate
from fixtures.noise import NoiseModel, apply

_SPEC = importlib.util.spec_from_file_location(
    "accuracy", Path(__file__).resolve().parent.parent / "benchmarks" / "accuracy.py"
)
accuracy = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_default_noise_meets_the_targets(seed: int) -> None:
    generated = generate(20_000, seed=seed)
    noisy = apply(generated, NoiseModel(), seed=seed)
    flags, resolutions, _ = accuracy._run(noisy, generated.policy_toml)
    _, overall = accuracy._per_rule(flags, noisy.truth)
    resolution = accuracy._resolution(resolutions, accuracy._rows(noisy))
    assert resolution["overall"]["attempts"] > 1000
    assert resolution["overall"]["wrong_rate"] <= 0.001
    assert resolution["typo_and_transposition_correct_rate"] >= 0.95
    assert overall["precision"] >= 0.995 and overall["recall"] >= 0.99
