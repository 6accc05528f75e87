#!/bin/bash
# A scale's data through the store, as a bureau runs it: every delivery ingested with
# `crosscheck ingest` (hukou as one CSV, the others as the Parquet delivered), then one run with
# `crosscheck runs start`, then the same run again (it must change nothing). Each command's wall
# time, CPU time and peak memory are printed (GNU time; without it, bash's: no peak).
#
#   bash benchmarks/through_store.sh bench-data/scale-province-1-<hash> /work/store-province
#
# The first argument is a directory benchmarks/scale.py made (`--steps ingest:hukou` once, for
# its ingest/hukou.csv); the second, a data directory to create (removed first).
set -euo pipefail
scale=$(realpath "$1")
export CROSSCHECK_DATA_DIR=$2
[ -f "$scale/ingest/hukou.csv" ] || { echo "no $scale/ingest/hukou.csv: run scale.py --steps ingest:hukou first" >&2; exit 2; }
rm -rf "$CROSSCHECK_DATA_DIR"
measure() {  # label, command...: the command's last lines, then its figures
    local label=$1; shift
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "$label: %e s wall, %U+%S s CPU, %M KiB peak" "$@" 2>&1 | tail -3
    else  # no GNU time (Debian: apt-get install time): bash's, without the peak
        local TIMEFORMAT="$label: %R s wall, %U+%S s CPU"
        { time "$@" 2>&1 | tail -2; } 2>&1
    fi
}
started=$(date +%s)
for file in "$scale/ingest/hukou.csv" $(ls "$scale"/sources/*.parquet | grep -v /hukou.parquet) "$scale/roll.parquet"; do
    key=$(basename "$file" | sed 's/\..*//')
    measure "ingest $key" python -m engine ingest "$key" "$file" --snapshot-date 2026-06-30 || true  # exit 2: rows rejected
done
echo "every delivery ingested in $(( $(date +%s) - started )) s"
measure "runs start" python -m engine runs start --as-of 2026-06-30 --policy "$scale/policy.toml"
measure "runs start, again" python -m engine runs start --as-of 2026-06-30 --policy "$scale/policy.toml"
