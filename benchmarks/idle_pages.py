"""What it costs to touch memory again after it sat untouched: on this project's VM, a page left
alone for a few hundred milliseconds is slow to touch again, and the check process's large
structures are such pages.

    python benchmarks/idle_pages.py                 # a table: time untouched → µs a page
    python benchmarks/idle_pages.py --megabytes 512 --pages 400 --repeat 5
    python benchmarks/idle_pages.py --pauses 0.5 --json    # one figure, as scale.py takes it

It fills an array (anonymous memory), then for each pause: touches every page, waits (asleep,
or spinning on the CPU with --spin), and reads one byte from each of `--pages` distinct pages
chosen at random, timing that read; then reads the same bytes again (now warm). No page fault
happens (the pages are mapped all along: the process's fault count is printed), so what the
read waits for is below the guest: the host taking back, or losing track of, memory the guest
has not used lately.

The cost is the host's, not the code's: on 2026-12-06 a page untouched for 0.5 s cost ~35-45 µs
in the VM's slow spells and ~0.6-2 µs in its fast ones, the same build on the same data (and the
check's p99 at concurrency 32 21-40 against 16-20 ms). scale.py takes this figure (`--pauses
0.5 --json`) beside each run of its api step and at its start and end, so that a table says
which machine it was measured on.

Why it matters: a check reads a few rows of a city's sources, indexes and roll (hundreds of MB
in all), each page touched a few times a minute at most. Measured here (2026-12-06), a page
untouched for 0.1 s cost ~5–12 µs to touch, for 2 s ~40–60 µs, where a warm one costs well
under 1 µs. Structures of scattered Python objects (a dict of the roll's 252k IDs to frozensets:
4–5 pages a lookup) then cost milliseconds a group of checks; compact arrays searched together
(engine.check's roll index) touch fewer pages, and pages the checks keep warm.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np

PAGE = 4096
PAUSES = (0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0)


def _touch_all(memory: np.ndarray) -> None:
    memory[::PAGE] += 1  # one write a page: every page touched, none skipped


def _timed_read(memory: np.ndarray, offsets: np.ndarray) -> float:
    started = time.perf_counter()
    memory[offsets].sum()
    return time.perf_counter() - started


def _wait(seconds: float, spin: bool) -> None:
    if not spin:
        time.sleep(seconds)
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measure(megabytes: int, pages: int, repeat: int, spin: bool, pauses: tuple[float, ...] = PAUSES,
            seed: int = 1) -> list[dict[str, float]]:
    """Per pause: the median µs a page of a read of `pages` distinct pages, cold then warm, and
    the page faults the process took meanwhile."""
    memory = np.frombuffer(bytearray(megabytes << 20), dtype=np.uint8)  # a bytearray: 4 KB pages, as Python's objects
    count = len(memory) // PAGE
    random = np.random.default_rng(seed)
    rows = []
    for pause in pauses:
        cold, warm = [], []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(repeat):
            offsets = np.sort(random.choice(count, size=min(pages, count), replace=False)) * PAGE + 64
            _touch_all(memory)
            _wait(pause, spin)
            cold.append(_timed_read(memory, offsets) / len(offsets))
            warm.append(_timed_read(memory, offsets) / len(offsets))
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        rows.append({"pause_s": pause, "cold_us": statistics.median(cold) * 1e6,
                     "warm_us": statistics.median(warm) * 1e6, "faults": faults})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=256, help="memory filled (default 256)")
    parser.add_argument("--pages", type=int, default=200, help="distinct pages read after each pause (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="reads per pause; the median is shown (default 3)")
    parser.add_argument("--spin", action="store_true", help="wait on the CPU instead of asleep")
    parser.add_argument("--pauses", type=float, nargs="+", default=list(PAUSES), metavar="SECONDS",
                        help="how long the pages sit untouched, one row each (default: " + " ".join(map(str, PAUSES)) + ")")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    rows = measure(args.megabytes, args.pages, args.repeat, args.spin, tuple(args.pauses))
    if args.json:
        print(json.dumps(rows))
        return
    waiting = "spinning" if args.spin else "asleep"
    print(f"{args.pages} distinct pages of {args.megabytes} MB read after the pause ({waiting}), median of {args.repeat}")
    print("| untouched for | µs a page, first read | µs a page, read again | page faults meanwhile |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['pause_s']:g} s | {row['cold_us']:.2f} | {row['warm_us']:.2f} | {row['faults']} |")


if __name__ == "__main__":
    main()
