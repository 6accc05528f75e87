"""Checking one household (or a batch) against in-memory indexed sources: engine.check.

    python benchmarks/bench_check.py --households 100000

Generates the city once (Parquet, cached as benchmarks/bench_run.py caches it), loads it once
more into loaded frames (cached beside it under loaded/, Parquet of `Loaded.frame`, as the store
keeps snapshots), then in this process: builds the CheckIndex (time, resident memory), checks
random households one at a time and in batches (wall and CPU time per call: the machine may be
shared, CPU time is what a check costs), and times run() on one household with its sources
pre-filtered, the path a check would take without the index. `--verify` also runs the full
city once and compares every checked household's flags with it.

`--screen` measures what skipping the rules that find nothing could save at most: each batch
checked with every rule, then with only the rules that flagged it (their flags must be the
same), both timed once the rules' plans are compiled. Most rules that run over a few households
find nothing, and each costs its plan's fixed overhead; no screen deciding in advance which
rules can fire would make a check cheaper than the second figure.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def loaded_frames(directory: Path, as_of: date) -> Path:
    """Loaded frames of the generated city, cached under `directory`/loaded."""
    from engine import files, loaders

    target = directory / "loaded"
    if (target / "roll.parquet").exists():
        return target
    target.mkdir(exist_ok=True)
    started = time.perf_counter()
    for key, path in {"roll": next(directory.glob("roll.*")), **files.find_sources(directory / "sources")}.items():
        loaders.load(path, key, as_of).frame.write_parquet(target / f"{key}.parquet")
    print(f"loaded and cached the frames in {time.perf_counter() - started:.1f} s -> {target}")
    return target


def _timed(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"{statistics.median(ordered):8.2f} {at(0.90):8.2f} {at(0.99):8.2f} {ordered[-1]:8.2f}"


@dataclass
class ScreenBound:
    """What `--screen` measured: per flagged batch, ms with every rule and with only its flagging rules."""

    every: list[float] = field(default_factory=list)
    only: list[float] = field(default_factory=list)
    flagging: Counter = field(default_factory=Counter)  # batches each rule flagged
    selected: int = 0  # rules a check runs by default
    batches: int = 0

    def report(self, batch_size: int) -> str:
        if not self.every:
            return f"batch of {batch_size}: none of the {self.batches} batches was flagged"
        return (f"batch of {batch_size}, the {len(self.every)} of {self.batches} batches flagged, ms (mean): every "
                f"rule {statistics.mean(self.every):.2f}, only the rules that flag the batch "
                f"{statistics.mean(self.only):.2f} (a perfect screen's bound); rules flagging a batch "
                f"{sum(self.flagging.values()) / self.batches:.2f} on average, of {self.selected} selected\n"
                "batches flagged, by rule: "
                + ", ".join(f"{rule} {count}" for rule, count in self.flagging.most_common()))


def screen_bound(index, batches: list, as_of: date) -> ScreenBound:
    """Each batch checked with every rule, then with only the rules that flagged it (the module's
    docstring): both timed once compiled, the flags compared."""
    bound = ScreenBound(batches=len(batches))
    for frame in batches:
        index.check(frame, as_of)  # the folds of this batch's rules, compiled before the clock
        started = time.perf_counter()
        result = index.check(frame, as_of)
        every_ms = (time.perf_counter() - started) * 1000
        bound.selected = len(result.ran)
        found = sorted(set(result.flags.get_column("rule_id").to_list()))
        bound.flagging.update(found)
        if not found:  # nothing to time: a rule list of none means every rule
            continue
        index.check(frame, as_of, rules=found)  # compiles the plans of this selection
        started = time.perf_counter()
        again = index.check(frame, as_of, rules=found)
        bound.only.append((time.perf_counter() - started) * 1000)
        bound.every.append(every_ms)
        if not again.flags.equals(result.flags):
            raise AssertionError(f"the rules {found} alone flag a batch otherwise than every rule does")
    return bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=100_000, help="households in the city (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (the households checked: seed too)")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data", help="where generated data is cached")
    parser.add_argument("--checks", type=int, default=1000, help="single-household checks timed (default 1000)")
    parser.add_argument("--batches", type=int, default=50, help="batches timed (default 50)")
    parser.add_argument("--batch-size", type=int, default=32, help="households per batch (default 32)")
    parser.add_argument("--verify", action="store_true", help="compare every check with one full run")
    parser.add_argument("--screen", action="store_true",
                        help="also time each batch with only the rules that flag it (a perfect screen's bound)")
    args = parser.parse_args()

    import polars as pl
    import pypinyin  # noqa: F401  # loaded before the clock, as a server would have it
    from bench_api import rss_mib
    from bench_run import prepare

    from engine.check import CheckIndex
    from engine.policy import load_policy
    from engine.run import run
    from fixtures.generator import DEFAULT_AS_OF

    as_of = DEFAULT_AS_OF
    directory = prepare(args.households, args.seed, args.data)
    frames_dir = loaded_frames(directory, as_of)
    roll = pl.read_parquet(frames_dir / "roll.parquet")
    sources = {p.stem: pl.read_parquet(p) for p in sorted(frames_dir.glob("*.parquet")) if p.stem != "roll"}
    policy = load_policy(directory / "policy.toml")
    rss_frames = rss_mib(os.getpid())
    started = time.perf_counter()
    index = CheckIndex(roll, sources, policy)
    build_s = time.perf_counter() - started
    rss_index = rss_mib(os.getpid())

    rng = random.Random(args.seed)
    households = roll.get_column("household_id").unique().sort().to_list()
    wanted = rng.sample(households, min(len(households), args.checks + args.batches * args.batch_size))
    by_household = roll.filter(pl.col("household_id").is_in(wanted)).partition_by("household_id", as_dict=True)
    singles = [by_household[(h,)] for h in wanted[: args.checks]]
    batches = [
        pl.concat([by_household[(h,)] for h in wanted[args.checks + i * args.batch_size:][: args.batch_size]])
        for i in range(args.batches)
    ]

    first_ms, _ = _timed(lambda: index.check(singles[0], as_of))  # compiles the rules' plans
    for frame in singles[:50]:  # and the folds of the commonest sets of rules that fire
        index.check(frame, as_of)
    single = [_timed(lambda f=frame: index.check(f, as_of)) for frame in singles]
    batched = [_timed(lambda f=frame: index.check(f, as_of)) for frame in batches]

    def filtered(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
        ids = frame.get_column("id_number").implode()
        return {key: s.filter(pl.col("id_number").is_in(ids)) for key, s in sources.items()}

    inputs = [(frame, filtered(frame)) for frame in singles[:20]]
    plain = [_timed(lambda f=f, s=s: run(f, s, as_of, policy)) for f, s in inputs]

    print(
        f"households {args.households:,}  roll rows {roll.height:,}  source rows "
        f"{sum(s.height for s in sources.values()):,}  (hukou {sources['hukou'].height:,})  "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
        f"index build {build_s:.2f} s  resident memory {rss_frames:,.0f} MiB with the frames -> "
        f"{rss_index:,.0f} MiB with the index (+{rss_index - rss_frames:,.0f})  first check "
        f"(compiles the plans) {first_ms:.0f} ms\n"
    )
    print(f"{'ms per call':38s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s}")
    rows = [
        (f"check, 1 household x{len(single)}", single),
        (f"check, batch of {args.batch_size} x{len(batched)}", batched),
        (f"run(), 1 household, filtered x{len(plain)}", plain),
    ]
    for label, timings in rows:
        print(f"{label + ', wall':38s} {_quantiles([w for w, _ in timings])}")
        print(f"{label + ', cpu':38s} {_quantiles([c for _, c in timings])}")

    if args.screen:
        print("\n" + screen_bound(index, batches, as_of).report(args.batch_size))

    if args.verify:
        full = run(roll, sources, as_of, policy)
        checked = [*singles, *batches]
        bad = [
            frame["household_id"][0]
            for frame in checked
            if not index.check(frame, as_of).flags.equals(
                full.flags.filter(pl.col("household_id").is_in(frame.get_column("household_id").unique().implode()))
            )
        ]
        verdict = f"{len(bad)} DIFFER" if bad else "all equal"
        print(f"\nverified {len(checked)} checks against the full run: {verdict}")
        if bad:
            sys.exit(1)


if __name__ == "__main__":
    main()
