"""Crosscheck at city and province scale, against DuckDB and pandas on the same data, in one run.

    python benchmarks/scale.py --scale city          # ~290k roll persons, 27.75M source rows
    python benchmarks/scale.py --scale province      # ten times everything
    python benchmarks/scale.py --scale 500           # any number of households (a smoke test)

Data. The roll, the injected cases and a first layer of source records come from the fixtures
generator (`fixtures.generator.generate(households, seed)`, so the run still has its ground
truth). Every source is then padded to the scale's row count with background rows: rows of the
generated source drawn at random (so every column looks like the real thing) whose IDs are
replaced by valid IDs of people who are on no roll (region codes 3204xx, never generated for the
city). Everything is vectorised (numpy, polars); the result is cached as Parquet under
bench-data/scale-<name>-<seed>-<fingerprint>/ (git-ignored), with the vehicles source also as a
CSV for the ingest step.

Measurement. Each step runs in a fresh child process (`--child STEP DIR`) so that its peak
resident memory (its own ru_maxrss) is its own — the parent never loads data (it generates in a
child as well), since Linux carries a parent's resident size at the fork into the child's
high-water mark; wall and CPU time are measured inside the
child around the step only (interpreter start and imports excluded, libraries imported before
the clock). Steps:

* ingest      — the vehicles CSV to a Parquet snapshot through store.snapshots.ingest
                (engine.loaders: read, validate, normalize IDs; write Parquet; register in SQLite);
* run all     — engine.batch.run_files on the Parquet files: load + validate every file, resolve
                roll IDs against hukou, all rules (what a nightly job does, writing flags aside);
* run <cadence> — the same with `cadences=[<cadence>]` (only the sources those rules use);
* snapshots   — the roll and every source validated once through engine.loaders and kept as
                Parquet (what store.snapshots.ingest does per delivery; not a run cost);
* run:snapshots — the nightly path of store.runs: engine.run.run on lazy scans of those
                snapshots, no re-validation (the roll's ID validity re-judged at the as-of date);
* polars joins — not crosscheck: a bare lazy polars scan + inner join of the roll against every
                source on the ID column, the floor the engine's joins stand on;
* duckdb      — DuckDB, one query per source: the roll's Parquet joined to the source's Parquet
                on the ID column, the result fetched as Arrow;
* pandas      — pandas: read_parquet of the roll and of each source, `merge` on the ID column.

With `--repeat N` the steps run N times, interleaved; the table gives the best and the median
wall time, the best run's CPU time and the highest peak. crosscheck's best wall time is divided by
each peer's best.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CITY_HOUSEHOLDS = 120_000
# Source rows at city scale (issue 7); province is ten times each, a number of households scales them.
CITY_ROWS = {
    "hukou": 10_000_000,
    "vehicles": 3_000_000,
    "property": 4_000_000,
    "deaths": 100_000,
    "pensions": 2_000_000,
    "payroll": 500_000,
    "prisoners": 30_000,
    "housing_fund": 2_000_000,
    "farm_machinery": 100_000,
    "deposits": 5_000_000,
    "medical": 1_000_000,
    "cadre_relatives": 20_000,
}
SCALES = {"city": 1.0, "province": 10.0}
CADENCES = ("monthly", "quarterly", "semiannual", "annual")
INGEST_SOURCE = "vehicles"
# Background people: region codes the generated city never uses (its IDs are 3203xx).
_BACKGROUND_REGIONS = (320402, 320404, 320411, 320412, 320413, 320481, 320502, 320505)
_BIRTH_FIRST = date(1940, 1, 1)
_BIRTH_DAYS = 365 * 80
_SEQ = 898


def parse_scale(text: str) -> tuple[str, int, float]:
    """'city' | 'province' | a number of households -> (name, households, factor on CITY_ROWS)."""
    if text in SCALES:
        factor = SCALES[text]
        return text, int(CITY_HOUSEHOLDS * factor), factor
    try:
        households = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale: city, province or a number of households, not {text!r}") from None
    if households < 1:
        raise argparse.ArgumentTypeError("--scale: at least one household")
    return str(households), households, households / CITY_HOUSEHOLDS


DATA_VERSION = "1"  # bump when prepare(), pad() or background_ids() change what they write


def _fingerprint() -> str:
    """The generator's code and DATA_VERSION: cached data of an older generator is not reused."""
    code = b"".join((ROOT / "fixtures" / n).read_bytes() for n in ("generator.py", "cases.py", "population.py"))
    return hashlib.sha1(code + DATA_VERSION.encode()).hexdigest()[:8]


# ---- data -----------------------------------------------------------------------------------


def background_ids(start: int, n: int):
    """`n` distinct valid IDs of background people, the `start`-th onwards (a bijection of
    the index onto region x birth date x sequence number, scrambled so neighbours differ)."""
    import numpy as np
    import polars as pl

    from fixtures.population import make_ids, ymd_int

    capacity = len(_BACKGROUND_REGIONS) * _BIRTH_DAYS * _SEQ
    if start + n > capacity:
        raise ValueError(f"at most {capacity:,} background IDs")
    index = np.arange(start, start + n, dtype=np.int64)
    scrambled = (index * 1_000_000_007) % capacity  # 1e9+7 is prime and does not divide capacity
    seq = scrambled % _SEQ + 1
    day = (scrambled // _SEQ) % _BIRTH_DAYS
    region = np.asarray(_BACKGROUND_REGIONS, dtype=np.int64)[scrambled // (_SEQ * _BIRTH_DAYS)]
    births = pl.select(pl.lit(_BIRTH_FIRST) + pl.duration(days=pl.Series("d", day))).to_series()
    return make_ids(region, ymd_int(births), seq)


def pad(df, target: int, ids, rng):
    """`df` with random copies of its own rows added up to `target` rows, their ID columns
    taken from `ids` (a Series of background IDs, one per added row)."""
    import polars as pl

    extra = target - df.height
    if extra <= 0:
        return df
    filler = df[rng.integers(0, df.height, extra)]
    filler = filler.with_columns(ids.alias("id_number"))
    if "cadre_id_number" in filler.columns:  # nobody of the roll may be a padded cadre either
        filler = filler.with_columns(ids.sample(fraction=1.0, shuffle=True, seed=1).alias("cadre_id_number"))
    return pl.concat([df, filler.cast(df.schema)])


def prepare(scale: str, seed: int, data_root: Path) -> Path:
    """Generate (or find cached) data for `scale`; returns its directory."""
    import numpy as np

    from fixtures.generator import DEFAULT_AS_OF, generate, write

    name, households, factor = parse_scale(scale)
    directory = data_root / f"scale-{name}-{seed}-{_fingerprint()}"
    if (directory / "done.json").exists():
        return directory
    started = time.perf_counter()
    generated = generate(households, seed=seed, as_of=DEFAULT_AS_OF)
    print(f"generated the city: {households:,} households, {generated.roll.height:,} roll rows "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    rng = np.random.default_rng(seed)
    hukou_target = max(int(CITY_ROWS["hukou"] * factor), generated.sources["hukou"].height)
    n_people = hukou_target - generated.sources["hukou"].height
    people = background_ids(0, max(n_people, 1))  # hukou's background: one row per person
    for key, df in generated.sources.items():
        target = int(CITY_ROWS[key] * factor)
        extra = target - df.height
        if extra <= 0:
            continue
        if key == "hukou":
            ids = people.head(extra)
        else:  # registries hold people of the city's hukou, several rows for some
            ids = people.gather(rng.integers(0, people.len(), extra))
        generated.sources[key] = pad(df, target, ids, rng)
    write(generated, directory, formats="parquet")
    ingest_dir = directory / "ingest"
    ingest_dir.mkdir(exist_ok=True)
    generated.sources[INGEST_SOURCE].write_csv(ingest_dir / f"{INGEST_SOURCE}.csv")
    counts = {"roll": generated.roll.height, **{k: v.height for k, v in generated.sources.items()}}
    (directory / "done.json").write_text(json.dumps({"households": households, "rows": counts}), encoding="utf-8")
    print(f"wrote {sum(counts.values()) - counts['roll']:,} source rows -> {directory} "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    return directory


# ---- the measured steps (each in its own child process) -----------------------------------


def _sources(directory: Path) -> list[Path]:
    return sorted((directory / "sources").glob("*.parquet"))


def step_ingest(directory: Path) -> dict:
    from fixtures.generator import DEFAULT_AS_OF
    from store.db import Store
    from store.settings import Settings
    from store.snapshots import ingest

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        store = Store.open(Settings(data_dir=Path(tmp)))  # schema created before the clock
        started, cpu = time.perf_counter(), time.process_time()
        done = ingest(store, INGEST_SOURCE, directory / "ingest" / f"{INGEST_SOURCE}.csv", DEFAULT_AS_OF)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        store.close()
    return {"wall": wall, "cpu": cpu, "note": f"{done.snapshot.rows:,} rows kept, {done.snapshot.rejects:,} rejected"}


def step_run(directory: Path, cadence: str | None) -> dict:
    import polars as pl
    import pypinyin  # noqa: F401  # engine.names imports it on first use: load it before the clock

    from engine.batch import run_files
    from fixtures.generator import DEFAULT_AS_OF

    steps: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()
    done = run_files(
        directory / "roll.parquet", directory / "sources", DEFAULT_AS_OF, policy=directory / "policy.toml",
        cadences=[cadence] if cadence else None, on_step=lambda _: steps.append(time.perf_counter()),
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    flags = done.result.flags
    # on_step: reading the roll, each source, resolving, running the rules (the last two).
    load = steps[-2] - started if len(steps) >= 2 else float("nan")
    resolve = steps[-1] - steps[-2] if len(steps) >= 2 else float("nan")
    rules = started + wall - steps[-1] if steps else float("nan")
    note = f"{flags.height:,} flags; load {load:.1f} s, resolve {resolve:.1f} s, rules {rules:.1f} s"
    if cadence is None:
        truth = pl.read_csv(directory / "truth.csv", schema_overrides={"household_id": pl.String})
        same = set(flags.select("household_id", "rule_id").iter_rows()) == set(
            truth.select("household_id", "rule_id").iter_rows()
        )
        note += f"; equal to the ground truth: {'yes' if same else 'NO'}"
    return {"wall": wall, "cpu": cpu, "note": note, "load": load, "resolve": resolve, "rules": rules}


def step_snapshots(directory: Path) -> dict:
    """Validate the roll and every source once, as store.snapshots.ingest does for each delivery,
    and keep the usable rows as Parquet under snapshots/ (what `run:snapshots` reads)."""
    from engine import loaders
    from fixtures.generator import DEFAULT_AS_OF

    target = directory / "snapshots"
    target.mkdir(exist_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for path in [directory / "roll.parquet", *_sources(directory)]:
        key = "roll" if path.stem == "roll" else path.stem
        frame = loaders.load(path, key, DEFAULT_AS_OF).frame
        rows += frame.height
        frame.write_parquet(target / f"{key}.parquet")
        del frame
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "note": f"{rows:,} rows validated and kept"}


def step_run_snapshots(directory: Path) -> dict:
    """The nightly path of store.runs: engine.run.run on lazy scans of validated snapshots (no
    re-parsing, no re-validation), the roll's ID validity judged at the as-of date."""
    import polars as pl
    import pypinyin  # noqa: F401

    from engine.ids import valid_expr
    from engine.policy import load_policy
    from engine.run import run
    from fixtures.generator import DEFAULT_AS_OF

    snapshots = directory / "snapshots"
    if not (snapshots / "roll.parquet").exists():
        raise SystemExit("run:snapshots needs the snapshots step first (--steps snapshots,run:snapshots)")
    policy = load_policy(directory / "policy.toml")
    steps: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()
    roll = pl.scan_parquet(snapshots / "roll.parquet")
    roll = roll.with_columns(valid_expr(pl.col("id_number"), DEFAULT_AS_OF).alias("id_valid"))
    sources = {p.stem: pl.scan_parquet(p) for p in sorted(snapshots.glob("*.parquet")) if p.stem != "roll"}
    result = run(roll, sources, DEFAULT_AS_OF, policy, on_step=lambda _: steps.append(time.perf_counter()))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    flags = result.flags
    truth = pl.read_csv(directory / "truth.csv", schema_overrides={"household_id": pl.String})
    same = set(flags.select("household_id", "rule_id").iter_rows()) == set(
        truth.select("household_id", "rule_id").iter_rows()
    )
    resolve = steps[-1] - steps[0] if len(steps) >= 2 else float("nan")
    rules = started + wall - steps[-1] if steps else float("nan")
    note = (f"{flags.height:,} flags; resolve {resolve:.1f} s, rules {rules:.1f} s; "
            f"equal to the ground truth: {'yes' if same else 'NO'}")
    return {"wall": wall, "cpu": cpu, "note": note, "resolve": resolve, "rules": rules}


def step_polars(directory: Path) -> dict:
    import polars as pl

    started, cpu = time.perf_counter(), time.process_time()
    roll = pl.scan_parquet(directory / "roll.parquet").select("household_id", "program", "id_number")
    plans = [roll.join(pl.scan_parquet(p), on="id_number", how="inner") for p in _sources(directory)]
    rows = sum(frame.height for frame in pl.collect_all(plans))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "note": f"{len(plans)} joins, {rows:,} joined rows"}


def step_duckdb(directory: Path) -> dict:
    import duckdb

    con = duckdb.connect()
    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for path in _sources(directory):
        query = (
            f"SELECT r.household_id, r.program, s.* FROM read_parquet('{directory / 'roll.parquet'}') r "
            f"JOIN read_parquet('{path}') s ON r.id_number = s.id_number"
        )
        result = con.execute(query)
        fetch = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table  # DuckDB 2 renamed it
        rows += fetch().num_rows
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "note": f"{len(_sources(directory))} queries, {rows:,} joined rows"}


def step_pandas(directory: Path) -> dict:
    import pandas as pd

    started, cpu = time.perf_counter(), time.process_time()
    roll = pd.read_parquet(directory / "roll.parquet", columns=["household_id", "program", "id_number"])
    rows = 0
    for path in _sources(directory):
        rows += len(roll.merge(pd.read_parquet(path), on="id_number", how="inner"))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "note": f"{len(_sources(directory))} merges, {rows:,} joined rows"}


def child(step: str, directory: Path) -> dict:
    if step == "ingest":
        return step_ingest(directory)
    if step == "run":
        return step_run(directory, None)
    if step == "snapshots":
        return step_snapshots(directory)
    if step == "run:snapshots":
        return step_run_snapshots(directory)
    if step.startswith("run:"):
        return step_run(directory, step.split(":", 1)[1])
    return {"polars": step_polars, "duckdb": step_duckdb, "pandas": step_pandas}[step](directory)


def measure(step: str, directory: Path) -> dict:
    """Run `step` in a fresh child process; its result and its own peak resident memory (the
    child reports its ru_maxrss: imports included, nothing of this parent or the generator)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", step, str(directory)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mib"] = result.pop("maxrss_kib") / 1024
    return result


LABELS = {
    "ingest": f"ingest: {INGEST_SOURCE} CSV -> Parquet snapshot",
    "run": "crosscheck full run, all rules",
    **{f"run:{c}": f"crosscheck {c} rules" for c in CADENCES},
    "snapshots": "validate roll + every source once -> snapshots",
    "run:snapshots": "crosscheck full run from validated snapshots",
    "polars": "(floor) bare polars joins, no engine",
    "duckdb": "DuckDB exact joins, roll x every source",
    "pandas": "pandas merge, roll x every source",
}


def best_of(runs: list[dict]) -> dict:
    """The fastest of a step's repetitions, with the median wall time and the highest peak."""
    best = dict(min(runs, key=lambda r: r["wall"]))
    walls = sorted(r["wall"] for r in runs)
    best["median_wall"] = walls[len(walls) // 2]
    best["walls"] = [r["wall"] for r in runs]
    best["peak_mib"] = max(r["peak_mib"] for r in runs)
    return best


def table(results: dict[str, dict]) -> str:
    """Wall (best and median of the repetitions), CPU and peak of the best, the highest peak;
    crosscheck's best wall divided by each peer's best."""
    duck, pandas_ = results.get("duckdb"), results.get("pandas")
    lines = [
        "| step | wall s, best | wall s, median | CPU s | peak MiB | ÷ DuckDB | ÷ pandas | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    def ratio(step: str, r: dict, peer: dict | None) -> str:
        return f"{r['wall'] / peer['wall']:.2f}×" if peer and step.startswith("run") else ""

    for step, r in results.items():
        lines.append(
            f"| {LABELS[step]} | {r['wall']:.2f} | {r['median_wall']:.2f} | {r['cpu']:.2f} | {r['peak_mib']:,.0f} | "
            f"{ratio(step, r, duck)} | {ratio(step, r, pandas_)} | {r.get('note', '')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="city", help="city, province or a number of households (default city)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data", help="where generated data is cached")
    parser.add_argument("--steps", default=None,
                        help="comma-separated subset of: ingest,run," + ",".join(f"run:{c}" for c in CADENCES)
                        + ",snapshots,run:snapshots,polars,duckdb,pandas (default all, in this order)")
    parser.add_argument("--repeat", type=int, default=1, help="run every step this many times, report the best")
    parser.add_argument("--no-peers", action="store_true", help="skip DuckDB and pandas (not installed)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("STEP", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        import resource

        result = child(args.child[0], Path(args.child[1]))
        result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
        print(json.dumps(result))
        return

    if args.prepare:
        print(prepare(args.scale, args.seed, args.data))
        return
    try:
        parse_scale(args.scale)  # fail early on a bad --scale
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    steps = args.steps.split(",") if args.steps else [
        "ingest", "run", *(f"run:{c}" for c in CADENCES), "snapshots", "run:snapshots", "polars",
        *([] if args.no_peers else ["duckdb", "pandas"]),
    ]
    unknown = [s for s in steps if s not in LABELS]
    if unknown:
        parser.error(f"unknown steps: {', '.join(unknown)}")
    # Generated in a child too: a child's ru_maxrss starts from its parent's resident size at
    # the fork (Linux keeps the high-water mark across exec), so this parent stays small.
    prepared = subprocess.run(
        [sys.executable, __file__, "--prepare", "--scale", args.scale, "--seed", str(args.seed), "--data",
         str(args.data)], stdout=subprocess.PIPE, text=True, check=False,
    )
    if prepared.returncode != 0:
        raise SystemExit(f"generating the data failed (exit {prepared.returncode})")
    print(prepared.stdout, end="", flush=True)
    directory = Path(prepared.stdout.strip().splitlines()[-1])
    counts = json.loads((directory / "done.json").read_text(encoding="utf-8"))
    rows = counts["rows"]
    print(f"scale {args.scale}: {counts['households']:,} households, roll {rows['roll']:,} rows, "
          f"sources {sum(v for k, v in rows.items() if k != 'roll'):,} rows "
          f"({', '.join(f'{k} {v:,}' for k, v in rows.items() if k != 'roll')})", flush=True)
    runs: dict[str, list[dict]] = {step: [] for step in steps}
    for repetition in range(args.repeat):  # interleaved: a slow spell of the machine hits every step
        for step in steps:
            if step == "snapshots" and repetition:
                continue  # preparation for run:snapshots; once is enough
            result = measure(step, directory)
            runs[step].append(result)
            print(f"  [{repetition + 1}/{args.repeat}] {LABELS[step]}: wall {result['wall']:.2f} s, "
                  f"cpu {result['cpu']:.2f} s, peak {result['peak_mib']:,.0f} MiB", flush=True)
    results = {step: best_of(found) for step, found in runs.items()}
    print()
    print(table(results))
    duck = results.get("duckdb")
    for step in ("run", "run:snapshots"):
        if step not in results:
            continue
        run = results[step]
        checks = [("≤ 5 s wall", run["wall"] <= 5), ("≤ 3 GB peak", run["peak_mib"] <= 3 * 1024)]
        if duck:
            checks.append(("no slower than DuckDB's exact joins", run["wall"] <= duck["wall"]))
        print(f"city targets for the {LABELS[step]} (meaningful at --scale city): "
              + "; ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks))
    if args.json:
        args.json.write_text(json.dumps({"scale": args.scale, "rows": rows, "results": results}, indent=1),
                             encoding="utf-8")


if __name__ == "__main__":
    main()
