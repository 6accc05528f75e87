"""The data of benchmarks/scale.py: a generated city (or province) with its ground truth, every
source padded to the issue's row count, written as Parquet in chunks so that memory stays bounded.

    prepare(scale, seed, data_root) -> the directory (cached; see scale.py's docstring)
    snapshots(directory, as_of)     -> validate roll + sources once, chunk by chunk, as snapshots

What is generated. `fixtures.generator.generate(households, seed, case_fraction=...)` makes the
roll, the injected cases, the ground truth and a first layer of source records for the roll's
people and the city around them. Beyond the city (120,000 households) the number of *case*
households is kept at the city's (18,000): `case_fraction` is scaled down, because the
generator's per-birth-date ID allocator runs dry at 1.2M households with 15 % cases (and one
case kind asserts on a rare ID); the roll itself (persons, households, programs, dirty IDs) is
generated at the full count. At province scale: 1.2M households, 2.89M roll rows, 18,000 case
households, 15,030 truth pairs, ~38M first-layer source rows; ~100 s and ~9 GB for generate().

Every source is then padded to its row count with background rows: rows of the generated source
drawn at random (so every column looks like the real thing) whose IDs are valid IDs of people
who are on no roll (born elsewhere: region codes 31xxxx, 34xxxx, 37xxxx, never generated).
Hukou gets one row per background person; the other sources draw their IDs from those people
(some several times).
The padding is inert: the run's flags must still equal the ground truth, which scale.py checks.
It is written chunk by chunk (CHUNK rows) straight into each source's Parquet file, so the
province's 100M-row hukou never exists in memory at once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
INGEST_SOURCE = "vehicles"
CHUNK = 4_000_000  # rows per padding or validation chunk: ~0.5-1.5 GB of working memory
ROW_GROUP = 100_000  # what polars' write_parquet makes, so both writers' files read alike
# Background people: born elsewhere (Shanghai, Anhui, Shandong), as a province's hukou holds
# many. The codes are
# * on both sides of 3203 so that every row group of padding spans the roll's IDs in its min/max
#   statistics: with codes above 3203 only, a Parquet reader's row-group pruning (polars prunes
#   `is_in` filters on them) skipped every padding row group, which no real delivery allows;
# * three or more keying errors from every region code the generator uses (3203xx), so that no
#   typo the generator plants is one keying error from a background person: with 3202xx/3204xx
#   codes one digit from the city's, a stranger could make a planted repair ambiguous.
_BACKGROUND_REGIONS = (310106, 310107, 310109, 310113, 340406, 341126, 341226, 370406)
_BIRTH_FIRST = date(1940, 1, 1)
_BIRTH_DAYS = 365 * 80
_SEQ = 898

DATA_VERSION = "4"  # bump when prepare(), the padding or background_ids() change what they write


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


def _fingerprint() -> str:
    """The generator's code and DATA_VERSION: cached data of an older generator is not reused."""
    # All of fixtures/*.py, not a list of the generator's modules: its code is spread over many, and
    # a list goes stale when one is added. A change to a module it does not use costs a regeneration.
    code = b"".join(path.read_bytes() for path in sorted((ROOT / "fixtures").glob("*.py")))
    return hashlib.sha1(code + DATA_VERSION.encode()).hexdigest()[:8]


def data_dir(scale: str, seed: int, data_root: Path) -> Path:
    name, _, _ = parse_scale(scale)
    return data_root / f"scale-{name}-{seed}-{_fingerprint()}"


# ---- background people ----------------------------------------------------------------------


def background_capacity() -> int:
    return len(_BACKGROUND_REGIONS) * _BIRTH_DAYS * _SEQ


def background_ids_at(index):
    """The valid IDs of background people number `index` (a numpy int array): a bijection of the
    index onto region x birth date x sequence number, scrambled so that neighbours differ."""
    import numpy as np
    import polars as pl

    from fixtures.population import make_ids, ymd_int

    index = np.asarray(index, dtype=np.int64)
    capacity = background_capacity()
    if len(index) and (index.min() < 0 or index.max() >= capacity):
        raise ValueError(f"at most {capacity:,} background IDs")
    scrambled = (index * 1_000_000_007) % capacity  # 1e9+7 is prime and does not divide capacity
    seq = scrambled % _SEQ + 1
    day = (scrambled // _SEQ) % _BIRTH_DAYS
    region = np.asarray(_BACKGROUND_REGIONS, dtype=np.int64)[scrambled // (_SEQ * _BIRTH_DAYS)]
    births = pl.select(pl.lit(_BIRTH_FIRST) + pl.duration(days=pl.Series("d", day))).to_series()
    return make_ids(region, ymd_int(births), seq)


def background_ids(start: int, n: int):
    """`n` distinct valid IDs of background people, the `start`-th onwards."""
    import numpy as np

    return background_ids_at(np.arange(start, start + n, dtype=np.int64))


# ---- writing --------------------------------------------------------------------------------


class ChunkWriter:
    """One Parquet file written a frame at a time (zstd, ROW_GROUP-row groups, as polars writes)."""

    def __init__(self, path: Path):
        self.path, self.writer, self.schema, self.rows = path, None, None, 0

    def write(self, frame) -> None:
        import pyarrow.parquet as pq

        if self.schema is not None:
            frame = frame.cast(self.schema)
        table = frame.to_arrow()
        if self.writer is None:
            self.schema = frame.schema
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table, row_group_size=ROW_GROUP)
        self.rows += frame.height

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_padded(path: Path, df, target: int, ids_for, rng) -> int:
    """`df`, then random copies of its rows up to `target` rows in chunks, their ID columns
    given by `ids_for(offset, n)` (background IDs for the chunk's n rows); returns the rows."""
    out = ChunkWriter(path)
    out.write(df)
    written = 0
    while df.height + written < target:
        n = min(CHUNK, target - df.height - written)
        filler = df[rng.integers(0, df.height, n)]
        ids = ids_for(written, n)
        filler = filler.with_columns(ids.alias("id_number"))
        if "cadre_id_number" in filler.columns:  # nobody of the roll may be a padded cadre either
            filler = filler.with_columns(ids.sample(fraction=1.0, shuffle=True, seed=1).alias("cadre_id_number"))
        out.write(filler)
        written += n
    out.close()
    return out.rows


def prepare(scale: str, seed: int, data_root: Path) -> Path:
    """Generate (or find cached) data for `scale`; returns its directory."""
    import numpy as np

    from fixtures.generator import CASE_FRACTION, DEFAULT_AS_OF, generate
    from fixtures.writing import write

    name, households, factor = parse_scale(scale)
    directory = data_dir(scale, seed, data_root)
    if (directory / "done.json").exists():
        return directory
    started = time.perf_counter()
    case_fraction = CASE_FRACTION * min(1.0, CITY_HOUSEHOLDS / households)
    generated = generate(households, seed=seed, as_of=DEFAULT_AS_OF, case_fraction=case_fraction)
    print(f"generated the city: {households:,} households, {generated.roll.height:,} roll rows, "
          f"{generated.cases['household_id'].n_unique():,} case households "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    sources, generated.sources = generated.sources, {}
    write(generated, directory, formats="parquet")  # roll, truth, cases, policy: the sources below
    rng = np.random.default_rng(seed)
    hukou_target = max(int(CITY_ROWS["hukou"] * factor), sources["hukou"].height)
    n_people = max(hukou_target - sources["hukou"].height, 1)  # hukou's background: one row per person
    counts = {"roll": generated.roll.height}
    for key in list(sources):
        df = sources.pop(key)
        target = max(int(CITY_ROWS[key] * factor), df.height)
        if key == "hukou":
            def ids_for(offset: int, n: int):
                return background_ids(offset, n)
        else:  # registries hold people of the city's hukou, several rows for some
            def ids_for(offset: int, n: int):
                return background_ids_at(rng.integers(0, n_people, n))
        counts[key] = write_padded(directory / "sources" / f"{key}.parquet", df, target, ids_for, rng)
        if key == INGEST_SOURCE:  # one delivery to ingest, at most a city's worth of rows
            _write_ingest_csv(directory, min(counts[key], CITY_ROWS[key]))
        del df
    (directory / "done.json").write_text(
        json.dumps({"households": households, "case_fraction": case_fraction, "rows": counts}), encoding="utf-8")
    print(f"wrote {sum(counts.values()) - counts['roll']:,} source rows -> {directory} "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    return directory


def _write_ingest_csv(directory: Path, rows: int) -> None:
    import polars as pl

    ingest_dir = directory / "ingest"
    ingest_dir.mkdir(exist_ok=True)
    frame = pl.scan_parquet(directory / "sources" / f"{INGEST_SOURCE}.parquet").head(rows).collect()
    frame.write_csv(ingest_dir / f"{INGEST_SOURCE}.csv")


# ---- validated snapshots ----------------------------------------------------------------------


def source_paths(directory: Path) -> list[Path]:
    return sorted((directory / "sources").glob("*.parquet"))


def keyed(directory: Path) -> int:
    """Every source snapshot under snapshots/ also kept keyed by ID (engine.keyed: the contract's
    columns, sorted by ID code, Arrow IPC) under keyed/, as store.snapshots.ingest writes it
    beside each source snapshot. Returns the rows written."""
    import polars as pl

    from engine.keyed import BATCH, Keyed
    from schemas import SOURCES

    held, target = directory / "snapshots", directory / "keyed"
    target.mkdir(exist_ok=True)
    (target / "done.json").unlink(missing_ok=True)
    rows = 0
    for path in source_paths(directory):
        scan = pl.scan_parquet(held / f"{path.stem}.parquet").select(SOURCES[path.stem].names)
        names, written = path.stem == "hukou", target / f"{path.stem}.arrow"
        if scan.select(pl.len()).collect().item() <= BATCH:  # as store.snapshots.ingest writes it
            frame = scan.collect()
            Keyed.of(frame, names=names).write(written)
            rows += frame.height
            del frame
        else:  # sorted out of core: store.snapshots.keyed's way, for a delivery this size
            rows += Keyed.sink(scan, written, names=names)
    (target / "done.json").write_text(json.dumps({"rows": rows}), encoding="utf-8")
    return rows


def snapshots(directory: Path, as_of: date) -> int:
    """The roll and every source validated through engine.loaders, as store.snapshots.ingest does
    for each delivery, kept as Parquet under snapshots/; sources CHUNK rows at a time (row numbers
    continue across chunks) so that a 100M-row hukou fits in memory. Returns the rows kept."""
    import polars as pl

    from engine import loaders

    target = directory / "snapshots"
    target.mkdir(exist_ok=True)
    rows = 0
    for path in [directory / "roll.parquet", *source_paths(directory)]:
        key = "roll" if path.stem == "roll" else path.stem
        scan = pl.scan_parquet(path)
        total = scan.select(pl.len()).collect().item()
        step = total if key == "roll" else CHUNK  # the roll is small, and loaded whole as a run would
        out = ChunkWriter(target / f"{key}.parquet")
        for offset in range(0, max(total, 1), max(step, 1)):
            chunk = scan.slice(offset, step).collect()
            frame = loaders.load_frame(chunk, key, path.name, as_of, first_row=2 + offset).frame
            out.write(frame)
            del chunk, frame
        out.close()
        rows += out.rows
    (target / "done.json").write_text(json.dumps({"rows": rows}), encoding="utf-8")  # a killed step leaves none
    return rows
