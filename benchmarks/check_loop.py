"""A model of `POST /checks` under a closed loop of clients: what its throughput and latency
follow from, given what an engine call costs and what the server spends on a request.

    python benchmarks/check_loop.py                       # the measured case, and what would change it
    python benchmarks/check_loop.py --fixed-ms 7.7 --per-request-ms 0.2 --server-ms 0.3

Why a model: at concurrency 32 the figures move with the machine (a VM whose speed drifts ~15 %
between days), and which change would pay cannot be tried one by one against wrk. The model is
the loop as built (store.check_queue, store.check_process):

* N clients each send a request, wait for its answer, and send the next;
* the server, one event loop on one core, spends `server_ms` on a request (reading it and
  writing its answer, half each), one request at a time;
* the check process takes every request waiting when it is free (one engine call), which costs
  `fixed_ms + per_request_ms × requests`; optionally it waits first, up to `wait_ms`, until
  `gather` requests are there.

With no wait the check process never idles: a request answered at the end of one call comes back
while the next runs and is taken by the one after, so a round trip spans two calls and the cycle
is 2 × fixed + N × per_request. `bench_api.py` measures the two costs per check
(`gathered`, `engine ms`: the server's /metrics).

Deterministic for a seed; the engine call's cost varies ±`jitter`/2 around its mean. The model
leaves out what makes the measured tail longer than its own (the client sharing the server's
core, the collector, the VM): it predicts throughput and the median, not the p99.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
from dataclasses import dataclass, replace

__all__ = ["Loop", "simulate"]


@dataclass(frozen=True)
class Loop:
    fixed_ms: float = 7.7  # an engine call's cost whatever its size (measured 2026-12-05, city, c=32)
    per_request_ms: float = 0.2  # and per request in it
    server_ms: float = 0.3  # the server's time per request, reading it and answering it
    clients: int = 32
    gather: int = 1  # the check process waits for this many requests...
    wait_ms: float = 0.0  # ...at most this long after it became free
    jitter: float = 0.1


def simulate(loop: Loop, seconds: float = 20.0, warmup_s: float = 2.0, seed: int = 1) -> dict[str, float]:
    """Throughput (requests/s), mean, p50 and p99 latency (ms), and mean requests per engine call."""
    rnd = random.Random(seed)
    events: list[tuple[float, int, str, object]] = []
    sequence = 0

    def at(time: float, kind: str, payload: object = None) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (time, sequence, kind, payload))

    server_free = 0.0

    def on_server(time: float, kind: str, request: int) -> None:
        nonlocal server_free
        server_free = max(time, server_free) + loop.server_ms / 2
        at(server_free, kind, request)

    sent: dict[int, float] = {}
    waiting: list[int] = []
    busy, free_since = False, 0.0
    latencies: list[float] = []
    sizes: list[int] = []

    def start(now: float) -> None:
        nonlocal busy
        if busy or not waiting:
            return
        deadline = free_since + loop.wait_ms  # compared as computed: a wake at it always starts
        if len(waiting) < loop.gather and now < deadline:
            at(deadline, "wake")
            return
        taken = list(waiting)
        waiting.clear()
        busy = True
        cost = (loop.fixed_ms + loop.per_request_ms * len(taken)) * (1 + loop.jitter * (rnd.random() - 0.5))
        if now > warmup_s * 1000:
            sizes.append(len(taken))
        at(now + cost, "done", taken)

    for client in range(loop.clients):
        at(rnd.random() * 0.1, "send", client)
    end = seconds * 1000
    while events:
        time, _, kind, payload = heapq.heappop(events)
        if time > end:
            break
        if kind == "send":
            sent[payload] = time  # type: ignore[index]
            on_server(time, "queued", payload)  # type: ignore[arg-type]
        elif kind == "queued":
            waiting.append(payload)  # type: ignore[arg-type]
            start(time)
        elif kind == "wake":
            start(time)
        elif kind == "done":
            busy, free_since = False, time
            for request in payload:  # type: ignore[union-attr]
                on_server(time, "answered", request)
            start(time)
        elif kind == "answered":
            if time > warmup_s * 1000:
                latencies.append(time - sent[payload])  # type: ignore[index]
            at(time + 0.02, "send", payload)  # the client's own turn-around
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / (seconds - warmup_s),
        "mean_ms": statistics.fmean(latencies),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(0.99 * len(latencies))],
        "gathered": statistics.fmean(sizes),
    }


def _row(label: str, loop: Loop) -> str:
    found = simulate(loop)
    return (f"| {label} | {found['requests_per_s']:,.0f} | {found['mean_ms']:.1f} | {found['p50_ms']:.1f} "
            f"| {found['p99_ms']:.1f} | {found['gathered']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixed-ms", type=float, default=Loop.fixed_ms, help="an engine call's fixed cost")
    parser.add_argument("--per-request-ms", type=float, default=Loop.per_request_ms, help="its cost per request")
    parser.add_argument("--server-ms", type=float, default=Loop.server_ms, help="the server's time per request")
    parser.add_argument("--clients", type=int, default=Loop.clients, help="concurrency (default 32)")
    args = parser.parse_args()
    base = Loop(args.fixed_ms, args.per_request_ms, args.server_ms, args.clients)
    all_of_them = base.clients
    print("| case | requests/s | mean ms | p50 ms | p99 ms (model) | gathered |")
    print("|---|---:|---:|---:|---:|---:|")
    print(_row("as built: take whatever waits", base))
    for wait in (3.0, 6.0):
        print(_row(f"wait up to {wait:g} ms for all {all_of_them}", replace(base, gather=all_of_them, wait_ms=wait)))
    print(_row("fixed cost −30 %", replace(base, fixed_ms=base.fixed_ms * 0.7)))
    faster = replace(base, server_ms=base.server_ms / 3)
    print(_row("server 3× lighter", faster))
    print(_row(f"server 3× lighter, wait up to 4 ms for all {all_of_them}",
               replace(faster, gather=all_of_them, wait_ms=4.0)))


if __name__ == "__main__":
    main()
