"""Full run of every rule on a generated city: wall time and peak memory.

    python benchmarks/bench_run.py --households 100000

Generates the data once (Parquet, cached under bench-data/<households>-<seed>-<generator>/,
<generator> a fingerprint of the generator's code), then runs the measured step in a fresh child process so
that its peak resident memory (ru_maxrss) is the run's own and not the generator's. The measured step is what a nightly job does: load the roll and all
source files (validation and ID normalization included), resolve dirty roll IDs against hukou,
run the 19 rules, write the flags. `--no-resolve` measures the same without the resolution.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _generator_version() -> str:
    """A fingerprint of the generator's code: cached data of an older generator is not reused."""
    # All of fixtures/*.py, as benchmarks/scale_data.py: the generator's code is spread over many modules.
    code = b"".join(path.read_bytes() for path in sorted((ROOT / "fixtures").glob("*.py")))
    return hashlib.sha1(code).hexdigest()[:8]


def prepare(households: int, seed: int, data_root: Path) -> Path:
    from fixtures.generator import DEFAULT_AS_OF, generate
    from fixtures.writing import write

    directory = data_root / f"{households}-{seed}-{_generator_version()}"
    if (directory / "truth.csv").exists():
        return directory
    started = time.perf_counter()
    generated = generate(households, seed=seed, as_of=DEFAULT_AS_OF)
    write(generated, directory, formats="parquet")
    print(f"generated {households:,} households in {time.perf_counter() - started:.1f} s -> {directory}")
    return directory


def phases(steps: list[tuple[str, float]], started: float, ended: float) -> tuple[float, float, float]:
    """Seconds loading, resolving and running the rules, from run_files' step messages and when
    each came: hukou is read, the roll resolved against it (核对身份证号 resolving …), the other
    sources read, the rules run (比对 running …) to the end. Loading is the rest."""
    def span(prefix: str) -> float:
        for at, (text, when) in enumerate(steps):
            if text.startswith(prefix):
                return (steps[at + 1][1] if at + 1 < len(steps) else ended) - when
        return 0.0

    resolve, rules = span("核对身份证号"), span("比对")
    return ended - started - resolve - rules, resolve, rules


def measure(directory: Path, as_of: date, out: Path, resolve_ids: bool = True) -> dict[str, float]:
    """The measured step; runs in the child process."""
    import polars as pl
    import pypinyin  # noqa: F401  # libraries load before the clock starts; engine.names imports it lazily

    from engine.batch import run_files
    from engine.output import write_flags

    started = time.perf_counter()
    cpu_started = time.process_time()
    steps: list[tuple[str, float]] = []
    roll = next(directory.glob("roll.*"))
    file_run = run_files(
        roll, directory / "sources", as_of, policy=directory / "policy.toml",
        on_step=lambda text: steps.append((text, time.perf_counter())), resolve_ids=resolve_ids,
    )
    loaded_and_ran = time.perf_counter() - started
    write_flags(file_run.result.flags, out)
    wall = time.perf_counter() - started
    sizes = {
        "roll_rows": pl.scan_parquet(roll).select(pl.len()).collect().item(),
        "source_rows": sum(
            pl.scan_parquet(p).select(pl.len()).collect().item() for p in (directory / "sources").glob("*.parquet")
        ),
    }
    truth = pl.read_csv(directory / "truth.csv", schema_overrides={"household_id": pl.String})
    found = set(file_run.result.flags.select("household_id", "rule_id").iter_rows())
    expected = set(truth.select("household_id", "rule_id").iter_rows())
    load, resolve, rules = phases(steps, started, started + loaded_and_ran)
    return {
        "wall_s": round(wall, 2),
        "load_s": round(load, 2),
        "resolve_s": round(resolve, 2),
        "rules_s": round(rules, 2),
        "resolved": int((file_run.result.resolutions["resolution"].struct.field("status") == "resolved").sum()),
        "equals_truth": found == expected,
        "load_and_rules_s": round(loaded_and_ran, 2),
        "cpu_s": round(time.process_time() - cpu_started, 2),
        "flags": file_run.result.flags.height,
        **sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=100_000, help="households to generate (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data", help="where generated data is cached")
    parser.add_argument("--no-resolve", action="store_true", help="run without ID resolution (for comparison)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from fixtures.generator import DEFAULT_AS_OF

    if args.child:
        result = measure(args.child, DEFAULT_AS_OF, args.child / "flags.parquet", resolve_ids=not args.no_resolve)
        print(json.dumps(result))
        return

    directory = prepare(args.households, args.seed, args.data)
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(directory), *(["--no-resolve"] if args.no_resolve else [])],
        capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        sys.exit(completed.stderr)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    print(
        f"households {args.households:,}  roll rows {result['roll_rows']:,}  source rows {result['source_rows']:,}\n"
        f"full run (load + resolve IDs + 19 rules + write): wall {result['wall_s']} s  "
        f"(load and validate {result['load_s']} s, resolve IDs {result['resolve_s']} s "
        f"[{result['resolved']:,} resolved], rules {result['rules_s']} s)  cpu {result['cpu_s']} s  "
        f"peak memory {peak_mib:,.0f} MiB  flags {result['flags']:,}  "
        f"equal to the ground truth: {'yes' if result['equals_truth'] else 'NO'}\n"
        f"targets: wall < 10 s, peak < 2048 MiB -> "
        f"{'met' if result['wall_s'] < 10 and peak_mib < 2048 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
