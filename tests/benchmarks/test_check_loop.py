"""benchmarks/check_loop.py, the model of POST /checks under a closed loop: it reproduces the loop
as built (two engine calls per round trip), and its what-ifs go the way the arithmetic says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from . import script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "check_loop.py"


def _model():
    return script("check_loop")


@pytest.mark.parametrize(("fixed_ms", "per_request_ms", "clients"), [(7.7, 0.2, 32), (4.0, 0.3, 16), (10.0, 0.1, 8)])
def test_taking_whatever_waits_makes_every_round_trip_span_two_engine_calls(fixed_ms, per_request_ms, clients):
    model = _model()
    found = model.simulate(model.Loop(fixed_ms, per_request_ms, server_ms=0.1, clients=clients, jitter=0.0))
    cycle_ms = 2 * fixed_ms + clients * per_request_ms
    assert found["requests_per_s"] == pytest.approx(clients / cycle_ms * 1000, rel=0.03)
    assert found["gathered"] == pytest.approx(clients / 2, rel=0.15)  # two calls share the clients


def test_waiting_for_everyone_pays_only_when_the_server_turns_requests_around_fast():
    model = _model()
    as_built = model.simulate(model.Loop(server_ms=0.1))
    gathered_all = model.simulate(model.Loop(server_ms=0.1, gather=32, wait_ms=4.0))
    assert gathered_all["gathered"] > 30 and gathered_all["requests_per_s"] > 1.15 * as_built["requests_per_s"]
    slow_server = model.simulate(model.Loop(server_ms=0.3, gather=32, wait_ms=4.0))
    assert slow_server["requests_per_s"] < model.simulate(model.Loop(server_ms=0.3))["requests_per_s"]


@pytest.mark.parametrize("server_ms", [0.1, 0.15, 0.2, 0.3])
def test_a_wait_ends_at_its_deadline(server_ms):
    # A wake at free time + wait once compared short of it in floating point and woke again, forever.
    model = _model()
    found = model.simulate(model.Loop(fixed_ms=6.5, server_ms=server_ms, gather=32, wait_ms=3.0), seconds=4.0)
    assert found["requests_per_s"] > 0


def test_the_same_seed_gives_the_same_figures():
    model = _model()
    assert model.simulate(model.Loop(), seed=7) == model.simulate(model.Loop(), seed=7)


def test_the_command_prints_its_table():
    completed = subprocess.run([sys.executable, str(SCRIPT), "--fixed-ms", "5", "--clients", "8"],
                               capture_output=True, text=True, check=True, timeout=120)
    assert completed.stdout.startswith("| case | requests/s |")
    assert "| as built: take whatever waits |" in completed.stdout
    assert "wait up to 3 ms for all 8" in completed.stdout
