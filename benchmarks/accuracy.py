"""Accuracy of ID resolution and of the flags under a configurable noise model.

    python benchmarks/accuracy.py --households 50000 --seed 1
    python benchmarks/accuracy.py --rate typo=0.03 --rate twin_decoy=0.5 --json out.json

Generates a city (fixtures.generator, with its injected cases), adds the noise of
fixtures.noise.NoiseModel (rates settable with --rate NAME=VALUE), loads every table the way
files are loaded (engine.loaders.load_frame: normalization, validation), runs every rule with ID
resolution (engine.run) and compares with the truth the noise model derives from construction:

* flags, per rule and overall: precision and recall of (household_id, rule_id) pairs;
* flags, per match method: precision of the person-level flags by the engine's match_method,
  recall of the expected person-level flags by the method a perfect reader would use for the
  row (and by noise kind);
* resolution alone, per roll row looked for in hukou because its ID is invalid or absent:
  correct, wrong and unresolved counts and rates, by noise kind and by decoy; and the rows the
  evidence only suggests an ID for.

Targets (issue 3): wrong ≤ 0.1 % of attempts; ≥ 95 % of typo and transposition rows resolved
correctly; overall flag precision ≥ 99.5 % and recall ≥ 99 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl

from engine.loaders import load_frame
from engine.policy import parse_policy
from engine.run import run
from fixtures.generator import generate
from fixtures.noise import NoiseModel, Noisy, apply

# The method a perfect reader uses for a row, by noise kind (None: the generator's spelling).
IDEAL_METHOD = {
    "typo": "repaired",
    "transposition": "repaired",
    "excel_000": "fuzzy",
    "excel_sci": "fuzzy",
    "legacy15": "legacy15",
    "spelling": "exact",
}


def _rate(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in NoiseModel.names():
        raise argparse.ArgumentTypeError(f"unknown rate {name!r}; known: {', '.join(NoiseModel.names())}")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None


def _pr(tp: int, fp: int, fn: int) -> dict[str, float | int | None]:
    return {
        "tp": tp, "fp": fp, "fn": fn,
        "precision": round(tp / (tp + fp), 5) if tp + fp else None,
        "recall": round(tp / (tp + fn), 5) if tp + fn else None,
    }  # fmt: skip


def _run(noisy: Noisy, policy_toml: str) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    roll = load_frame(noisy.roll, "roll", "roll", noisy.as_of)
    sources = {key: load_frame(df, key, key, noisy.as_of).frame for key, df in noisy.sources.items()}
    started = time.perf_counter()
    result = run(roll.frame, sources, noisy.as_of, parse_policy(policy_toml))
    return result.flags, result.resolutions, time.perf_counter() - started


def _per_rule(flags: pl.DataFrame, truth: pl.DataFrame) -> tuple[dict, dict]:
    found = set(flags.select("household_id", "rule_id").iter_rows())
    expected = set(truth.select("household_id", "rule_id").iter_rows())
    rules = sorted({r for _, r in found | expected})
    per_rule = {}
    for rule in rules:
        f = {p for p in found if p[1] == rule}
        e = {p for p in expected if p[1] == rule}
        per_rule[rule] = _pr(len(f & e), len(f - e), len(e - f))
    return per_rule, _pr(len(found & expected), len(found - expected), len(expected - found))


def _rows(noisy: Noisy) -> pl.DataFrame:
    """The noise table with the row number the engine reports (header = row 1)."""
    return noisy.rows.with_row_index("_i").with_columns((pl.col("_i").cast(pl.Int64) + 2).alias("_row"))


def _per_method(flags: pl.DataFrame, rows: pl.DataFrame) -> tuple[dict, dict, dict]:
    # A person in a household (their rows share one spelling) and a rule: the generator states
    # person-level truth per person, so a rule need not fire on every one of their rows.
    key = ["household_id", "roll_id_number", "rule_id"]
    person = flags.filter(pl.col("level") == "person")
    expected = (
        rows.with_columns(
            pl.col("noise").replace_strict(IDEAL_METHOD, default="exact", return_dtype=pl.String).alias("ideal")
        )
        .explode("expect")
        .drop_nulls("expect")
        .rename({"expect": "rule_id"})
    )
    found_keys = set(person.select(key).iter_rows())
    expected_keys = set(expected.select(key).iter_rows())
    precision = {}
    for method, group in person.group_by("match_method"):
        keys = set(group.select(key).iter_rows())
        precision[method[0]] = _pr(len(keys & expected_keys), len(keys - expected_keys), 0)
    recall_method, recall_noise = {}, {}
    for column, out in (("ideal", recall_method), ("noise", recall_noise)):
        for value, group in expected.with_columns(pl.col("noise").fill_null("none")).group_by(column):
            keys = set(group.select(key).iter_rows())
            out[value[0]] = _pr(len(keys & found_keys), 0, len(keys - found_keys))
    return precision, recall_method, recall_noise


def _resolution(resolutions: pl.DataFrame, rows: pl.DataFrame) -> dict:
    looked = resolutions.with_columns(
        pl.col("resolution").struct.field("reason").alias("reason"),
        pl.col("resolution").struct.field("status").alias("status"),
        pl.col("resolution").struct.field("suggested_id").alias("suggested_id"),
    ).join(rows.select("_row", "true_id", "in_hukou", "noise", "missing", "decoys"), on="_row", how="left")
    attempts = looked.filter(pl.col("reason") != "name_differs").with_columns(
        pl.when(pl.col("status") != "resolved")
        .then(pl.when(pl.col("in_hukou")).then(pl.lit("unresolved")).otherwise(pl.lit("unresolved_absent")))
        .when(pl.col("id_number") == pl.col("true_id"))
        .then(pl.lit("correct"))
        .otherwise(pl.lit("wrong"))
        .alias("outcome"),
        pl.when(pl.col("noise").is_not_null()).then(pl.col("noise"))
        .when(pl.col("missing")).then(pl.lit("missing_from_hukou"))
        .otherwise(pl.lit("generator case")).alias("noise"),
    )

    def counts(frame: pl.DataFrame) -> dict:
        n = frame.height
        c = dict(frame.group_by("outcome").len().iter_rows())
        out = {k: c.get(k, 0) for k in ("correct", "wrong", "unresolved", "unresolved_absent")}
        out["attempts"] = n
        out |= {f"{k}_rate": round(v / n, 5) if n else None for k, v in list(out.items()) if k != "attempts"}
        return out

    by_noise = {k[0]: counts(g) for k, g in attempts.group_by("noise")}
    by_decoy = {
        k[0]: counts(g) for k, g in attempts.explode("decoys").drop_nulls("decoys").group_by("decoys")
    }
    suggested = looked.filter(pl.col("status") == "suggested")
    typos = attempts.filter(pl.col("noise").is_in(["typo", "transposition"]))
    return {
        "overall": counts(attempts),
        "typo_and_transposition_correct_rate": round(typos.filter(pl.col("outcome") == "correct").height
                                                     / typos.height, 5) if typos.height else None,
        "by_noise": dict(sorted(by_noise.items())),
        "by_decoy": dict(sorted(by_decoy.items())),
        "suggested": {
            "rows": suggested.height,
            "right_person": suggested.filter(pl.col("suggested_id") == pl.col("true_id")).height,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=50_000, help="households to generate (default 50000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the city and of the noise (default 1)")
    parser.add_argument("--rate", type=_rate, action="append", default=[], metavar="NAME=VALUE",
                        help=f"a noise rate ({', '.join(NoiseModel.names())})")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON")
    args = parser.parse_args()

    model = NoiseModel(**dict(args.rate))
    started = time.perf_counter()
    generated = generate(args.households, seed=args.seed)
    noisy = apply(generated, model, seed=args.seed)
    flags, resolutions, run_s = _run(noisy, generated.policy_toml)
    rows = _rows(noisy)
    per_rule, overall = _per_rule(flags, noisy.truth)
    precision, recall_method, recall_noise = _per_method(flags, rows)
    resolution = _resolution(resolutions, rows)
    report = {
        "households": args.households, "seed": args.seed, "roll_rows": noisy.roll.height,
        "noise_model": model.__dict__, "run_s": round(run_s, 2), "total_s": round(time.perf_counter() - started, 1),
        "flags_overall": overall, "flags_per_rule": per_rule,
        "person_flags_precision_by_match_method": precision, "person_flags_recall_by_ideal_method": recall_method,
        "person_flags_recall_by_noise": recall_noise, "resolution": resolution,
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    _print(report)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _print(report: dict) -> None:
    o = report["flags_overall"]
    r = report["resolution"]
    ro = r["overall"]
    print(f"households {report['households']:,}  roll rows {report['roll_rows']:,}  seed {report['seed']}  "
          f"engine run {report['run_s']} s")
    print("noise model: " + ", ".join(f"{k}={v}" for k, v in report["noise_model"].items()))
    print("\nflags per rule                         tp      fp     fn  precision  recall")
    for rule, m in report["flags_per_rule"].items():
        print(f"  {rule:34} {m['tp']:6} {m['fp']:6} {m['fn']:6}  {_pct(m['precision']):>9}  {_pct(m['recall']):>7}")
    print(f"  {'ALL':34} {o['tp']:6} {o['fp']:6} {o['fn']:6}  {_pct(o['precision']):>9}  {_pct(o['recall']):>7}")
    print("\nperson-level flags by match method    precision (engine's method)   recall (ideal method)")
    methods = sorted(set(report["person_flags_precision_by_match_method"]) | set(report["person_flags_recall_by_ideal_method"]))
    for m in methods:
        p = report["person_flags_precision_by_match_method"].get(m, {})
        q = report["person_flags_recall_by_ideal_method"].get(m, {})
        print(f"  {m:12} {_pct(p.get('precision')):>10} of {p.get('tp', 0) + p.get('fp', 0):6}"
              f"          {_pct(q.get('recall')):>10} of {q.get('tp', 0) + q.get('fn', 0):6}")
    print("\nperson-level flags: recall by noise kind")
    for kind, q in sorted(report["person_flags_recall_by_noise"].items()):
        print(f"  {kind:16} {_pct(q['recall']):>8} of {q['tp'] + q['fn']}")
    print("\nresolution (roll rows with an invalid ID or a valid ID not in hukou)")
    print("                        attempts  correct    wrong  unresolved  (person not in hukou)")

    def line(label: str, c: dict) -> None:
        print(f"  {label:22} {c['attempts']:7} {c['correct']:8} {c['wrong']:8} {c['unresolved']:11} "
              f"{c['unresolved_absent']:10}    correct {_pct(c['correct_rate'])}  wrong {_pct(c['wrong_rate'])}")

    line("ALL", ro)
    for kind, c in r["by_noise"].items():
        line(kind, c)
    for kind, c in r["by_decoy"].items():
        line(f"decoy: {kind}", c)
    print(f"  suggested only (not used): {r['suggested']['rows']} rows, right person {r['suggested']['right_person']}")
    typo_rate = r["typo_and_transposition_correct_rate"]
    checks = [
        ("wrong resolutions ≤ 0.1% of attempts", ro["wrong_rate"] is not None and ro["wrong_rate"] <= 0.001,
         _pct(ro["wrong_rate"])),
        ("typo + transposition resolved correctly ≥ 95%", typo_rate is not None and typo_rate >= 0.95, _pct(typo_rate)),
        ("flag precision ≥ 99.5%", (o["precision"] or 0) >= 0.995, _pct(o["precision"])),
        ("flag recall ≥ 99%", (o["recall"] or 0) >= 0.99, _pct(o["recall"])),
    ]
    print("\ntargets")
    for label, ok, value in checks:
        print(f"  {'met    ' if ok else 'NOT MET'}  {label}: {value}")


if __name__ == "__main__":
    main()
