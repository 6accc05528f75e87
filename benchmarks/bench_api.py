"""POST /api/v1/checks latency against a real server with the sources of a generated city loaded.

    python benchmarks/bench_api.py --households 100000            # the issue's figure
    python benchmarks/bench_api.py --households 2000 --requests 200   # a quick look

1. The city (bench_run.py's cached Parquet: roll + 12 sources) is ingested as snapshots into a
   fresh data directory (validated once, as a delivery would be), and a `system` user is added.
2. `crosscheck serve` starts as its own process on a loopback port; the first check builds its
   in-memory index of the latest snapshots (timed and reported apart, with the server's RSS).
3. Requests are real households of the roll, drawn at random (`--pool` of them, checked in
   turn), sent as the JSON an application system would send. Concurrency 1: one after another.
   Concurrency 32: 32 clients each sending its next request as soon as the last was answered
   (closed loop), so the latency includes the queueing a server on 2 cores must do. The load
   generator is one asyncio process with keep-alive connections sending requests prepared
   beforehand (`--client httpx`: httpx's client instead, which costs ~1 ms of the machine's CPU
   a request); it shares the machine's cores with the server, as a real client on the same host
   would.

Prints p50, p90, p99 and max latency and the throughput for each concurrency; every answer must
be 200 (anything else is reported and counted).

4. `--xlsx-rows N` (default 10000, 0 to skip): the first N roll rows (whole households) written
   as an XLSX workbook with Chinese headers, uploaded to POST /api/v1/batches and polled every
   50 ms until the batch is completed: upload to flags, end to end, as a township would see it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def crosscheck(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "engine", *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"crosscheck {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def ingest_all(city: Path, data_dir: Path, as_of: date) -> None:
    """The roll and every source as snapshots, in this process (as `crosscheck ingest` would)."""
    from store.db import Store
    from store.settings import load_settings
    from store.snapshots import ingest

    with Store.open(load_settings(data_dir=data_dir)) as store:
        for path in sorted((city / "sources").glob("*.parquet")):
            ingest(store, path.stem, path, as_of)
        ingest(store, "roll", city / "roll.parquet", as_of)


def households_of(roll: Path, count: int, seed: int) -> list[dict[str, object]]:
    """Request bodies of `count` random households of the roll file (see bodies_of)."""
    from engine.loaders import load

    return bodies_of(load(roll, "roll", date(2026, 6, 30)).frame, count, seed)


def bodies_of(roll: pl.DataFrame, count: int, seed: int) -> list[dict[str, object]]:
    """Request bodies of `count` random households of a loaded roll frame: the IDs and names as
    written on the roll (dirty ones included), the program as its code."""
    import polars as pl

    frame = roll.with_columns(pl.col("id_number_raw").alias("id_number"))
    households = frame.get_column("household_id").unique().sort().to_list()
    chosen = random.Random(seed).sample(households, min(count, len(households)))
    bodies = []
    chosen_rows = frame.filter(pl.col("household_id").is_in(chosen))
    for (household_id,), rows in chosen_rows.group_by("household_id", maintain_order=True):
        members = [
            {"id_number": r["id_number"], "name": r["name"], "program": r["program"], "region_code": r["region_code"],
             "benefit_monthly": float(r["benefit_monthly"] or 0),
             "declared_income_monthly": float(r.get("declared_income_monthly") or 0), "relation": r.get("relation")}
            for r in rows.iter_rows(named=True)
        ]
        bodies.append({"household_id": str(household_id), "members": members})
    # In an order of their own, not the roll's: neighbouring households (one township, one
    # family's) gathered into one group are checked apart more often. Seeded: the same each run.
    random.Random(seed).shuffle(bodies)
    return bodies


def applicants_of(city: Path, count: int, seed: int) -> list[dict[str, object]]:
    """Request bodies of `count` households new to the roll, as at application time: persons of
    hukou the roll does not hold, one to four a household, under household ids it does not hold.
    Their IDs are valid and their own: nothing to resolve, and nothing of theirs among the
    index's tables of the roll's persons (engine.check's `_Slices`)."""
    import polars as pl

    rng = random.Random(seed)
    roll_ids = pl.scan_parquet(city / "roll.parquet").select("id_number")
    people = (pl.scan_parquet(city / "sources" / "hukou.parquet").select("id_number", "name", "region_code")
              .join(roll_ids, on="id_number", how="anti").head(count * 4).collect().rows())
    rng.shuffle(people)
    bodies, at = [], 0
    for number in range(count):
        size = rng.randint(1, 4)
        members = [{"id_number": id_number, "name": name, "program": "dibao", "region_code": region_code,
                    "benefit_monthly": 0.0, "declared_income_monthly": 0.0, "relation": "户主" if not n else "子女"}
                   for n, (id_number, name, region_code) in enumerate(people[at:at + size])]
        at += size
        bodies.append({"household_id": f"A{number:09d}", "members": members})
    return bodies


async def load(url: str, token: str, bodies: list[dict[str, object]], as_of: str, concurrency: int,
               requests: int) -> tuple[list[float], int, float]:
    import httpx

    latencies: list[float] = []
    failures = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=60) as client:
        async def worker() -> None:
            nonlocal failures
            for index in counter:
                body = {**bodies[index % len(bodies)], "as_of": as_of}
                started = time.perf_counter()
                answer = await client.post("/api/v1/checks", json=body)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    failures += 1
                    if failures <= 3:
                        print(f"  {answer.status_code}: {answer.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, failures, elapsed


async def load_raw(url: str, token: str, bodies: list[dict[str, object]], as_of: str, concurrency: int,
                   requests: int) -> tuple[list[float], int, float]:
    """`load`'s closed loop with a lean client: each request's bytes made before the clock starts,
    answers read by their Content-Length over keep-alive connections. On 2 cores the client's
    own CPU is taken from the server: httpx costs about 1 ms a request, this about 0.05 ms."""
    host, port = url.removeprefix("http://").split(":")
    encoded = []
    for body in bodies:
        payload = json.dumps({**body, "as_of": as_of}, ensure_ascii=False).encode()
        head = (f"POST /api/v1/checks HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        encoded.append(head.encode() + payload)
    latencies: list[float] = []
    failures = 0
    counter = iter(range(requests))

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for index in counter:
                started = time.perf_counter()
                writer.write(encoded[index % len(encoded)])
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                status = int(lines[0].split()[1])
                if status != 200:
                    failures += 1
                    if failures <= 3:
                        print(f"  {status}: {answer[:300].decode(errors='replace')}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures, time.perf_counter() - started


def engine_totals(url: str) -> tuple[float, float, float]:
    """The server's checks so far, from /metrics: (checks, Σ requests gathered with each, Σ its
    engine call's seconds). Differences between two readings give a level's means per check."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    found = {sample.name: sample.value
             for family in text_string_to_metric_families(httpx.get(f"{url}/api/v1/metrics", timeout=10).text)
             for sample in family.samples}
    return (found.get("crosscheck_check_together_count", 0.0), found.get("crosscheck_check_together_sum", 0.0),
            found.get("crosscheck_check_engine_seconds_sum", 0.0))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def xlsx_batch(url: str, token: str, roll: Path, rows: int, workdir: Path, as_of: str) -> dict[str, object]:
    import httpx
    import polars as pl

    from schemas import ROLL

    frame = pl.read_parquet(roll)
    households = frame.get_column("household_id").unique(maintain_order=True)
    sizes = frame.group_by("household_id", maintain_order=True).len()
    keep = sizes.filter(pl.col("len").cum_sum() <= rows).get_column("household_id")
    part = frame.filter(pl.col("household_id").is_in(keep.implode()))
    chinese = {c.name: c.zh for c in ROLL.columns if c.name in part.columns and c.zh}
    path = workdir / f"roll-{part.height}.xlsx"
    part.select(list(chinese)).rename(chinese).write_excel(path)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    with open(path, "rb") as handle:
        answer = httpx.post(f"{url}/api/v1/batches", headers=headers, timeout=120,
                            files={"file": (path.name, handle, "application/octet-stream")}, data={"as_of": as_of})
    answer.raise_for_status()
    accepted = time.perf_counter() - started
    batch_id = answer.json()["id"]
    while True:
        batch = httpx.get(f"{url}/api/v1/batches/{batch_id}", headers=headers, timeout=30).json()
        if batch["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    print(f"\nXLSX batch: {part.height:,} rows ({len(keep):,} of {len(households):,} households), "
          f"{path.stat().st_size / 2**20:.1f} MiB: 202 after {accepted * 1000:.0f} ms, {batch['status']} after "
          f"{elapsed:.2f} s with {batch['flags']} flags, {batch['rejects']} rows rejected"
          + (f" ({batch['error']})" if batch["error"] else ""))
    return {"rows": part.height, "households": len(keep), "accepted_s": accepted, "elapsed_s": elapsed,
            "status": batch["status"], "flags": batch["flags"], "rejects": batch["rejects"]}


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the server's: its check process)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def tree_rss_mib(pid: int) -> float:
    """The resident memory of the server and its children (the check process)."""
    return sum(rss_mib(p) for p in [pid, *children_of(pid)])


def cpu_s(pid: int) -> float:
    """The CPU time (user and system, every thread) a process has used so far; NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times(server_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far of (the server process, its children: the check process, this process:
    the load generator). Differences between two readings give a level's CPU per request: at
    concurrency 32 the two cores are shared by the three, and what they spend on a request
    bounds how many requests a second they can answer, hence the latency of a closed loop."""
    return cpu_s(server_pid), sum(cpu_s(child) for child in children_of(server_pid)), time.process_time()


def checker_cores(server_pid: int) -> int | None:
    """How many CPUs the server's check process may run on (1: it keeps to one, the default on two
    or more cores); None when there is no check process or it cannot be told. The check process
    is the server's busiest child (multiprocessing's resource tracker is another, idle one)."""
    children = [(cpu_s(child), child) for child in children_of(server_pid)]
    children = [(cpu, child) for cpu, child in children if not math.isnan(cpu)]
    if not children:
        return None
    try:
        return len(os.sched_getaffinity(max(children)[1]))
    except OSError:
        return None


def cpu_bound(server_us: float, checker_us: float, client_us: float, cores: int | None = None,
              checker_cores: int | None = None) -> str:
    """What the CPU a request cost allows. A closed loop of N clients waits N ÷ its throughput for
    each answer on average, and the throughput is at most what the busiest core allows: with the
    check process kept to one core (checker_cores 1), that core answers at most 1 ÷ its CPU a
    request, the others 1 ÷ (the server's and the load generator's); otherwise the cores answer at
    most cores ÷ (the three processes' CPU a request)."""
    cores = cores or os.cpu_count() or 1
    total = server_us + checker_us + client_us
    if math.isnan(total) or total <= 0:  # NaN: a process was gone before the reading
        return "CPU a request not measured"
    spent = (f"CPU a request {total:.0f} µs (server {server_us:.0f}, check process {checker_us:.0f}, load generator "
             f"{client_us:.0f})")
    if checker_cores == 1 and cores > 1 and checker_us > 0 and server_us + client_us > 0:
        checking, serving = 1e6 / checker_us, (cores - 1) * 1e6 / (server_us + client_us)
        busiest = "the check process's" if checking <= serving else "the server's and load generator's"
        others = "the other core" if cores == 2 else f"the other {cores - 1} cores"
        return (f"{spent}: the check process's core could answer at most {checking:,.0f} a second, {others} at "
                f"most {serving:,.0f}; {busiest} bind{'s' if checking <= serving else ''}")
    return f"{spent}: {cores} core{'s' if cores > 1 else ''} could answer at most {cores / total * 1e6:,.0f} a second"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=100_000, help="city size (default 100000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level (default 2000)")
    parser.add_argument("--pool", type=int, default=1000,
                        help="distinct households the requests check, in turn (default 1000: each checked again "
                             "every 1,000 requests; as many as --requests: each once, as a city's checks come)")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated levels (default 1,32)")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data", help="where generated data is cached")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory")
    parser.add_argument("--applicants", type=float, default=0.0, metavar="SHARE",
                        help="the share of the pool that are households new to the roll (applicants; default 0)")
    parser.add_argument("--xlsx-rows", type=int, default=10_000, help="rows of the XLSX batch (default 10000; 0: skip)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: raw (prepared requests on asyncio streams, the default) or httpx")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--profile", type=Path,
                        help="record the server with py-spy during the highest concurrency (a flame graph .svg, or collapsed stacks .txt)")
    args = parser.parse_args()

    from bench_run import prepare

    city = prepare(args.households, args.seed, args.data)
    as_of = "2026-06-30"
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = {**os.environ, "CROSSCHECK_DATA_DIR": str(workdir / "data"), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    ingest_all(city, workdir / "data", date.fromisoformat(as_of))
    print(f"ingested the roll and 12 sources as snapshots in {time.perf_counter() - started:.1f} s")
    token = crosscheck("users", "add", "bench", "--role", "system", "--region", "32", env=env).strip().splitlines()[-1]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not start:\n{server.stderr.read().decode() if server.stderr else ''}")
            time.sleep(0.2)
        pool = min(args.pool, args.households)
        new = round(pool * args.applicants)
        bodies = households_of(city / "roll.parquet", pool - new, args.seed) + applicants_of(city, new, args.seed)
        if new:  # among the roll's, in an order of their own
            random.Random(args.seed).shuffle(bodies)
        started = time.perf_counter()
        first = httpx.post(f"{url}/api/v1/checks", json={**bodies[0], "as_of": as_of},
                           headers={"Authorization": f"Bearer {token}"}, timeout=300)
        first.raise_for_status()
        index_s = time.perf_counter() - started
        print(f"first check (builds the index of the latest snapshots): {index_s:.2f} s; "
              f"server RSS {tree_rss_mib(server.pid):,.0f} MiB (with its check process)")
        asyncio.run(load(url, token, bodies, as_of, 4, 200))  # warm up connections and caches

        rows = []
        levels = [int(c) for c in args.concurrency.split(",")]
        for level in levels:
            spy = None
            if args.profile and level == max(levels):
                # A .txt path gets collapsed stacks (one line per stack, for scripts); others a flame graph.
                form = ["--format", "raw"] if args.profile.suffix == ".txt" else []
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--output", str(args.profile),
                                        "--rate", "200", "--subprocesses", "--threads", *form],
                                       stdout=subprocess.DEVNULL)
                time.sleep(1)
            generator = load_raw if args.client == "raw" else load
            before, cpu_before = engine_totals(url), cpu_times(server.pid)
            latencies, failures, elapsed = asyncio.run(generator(url, token, bodies, as_of, level, args.requests))
            # CPU µs a request of the server, its check process and the load generator (this one).
            cpu_us = [(b - a) / max(len(latencies), 1) * 1e6
                      for a, b in zip(cpu_before, cpu_times(server.pid), strict=True)]
            kept_to = checker_cores(server.pid)
            checks, together, engine_s = (b - a for a, b in zip(before, engine_totals(url), strict=True))
            if spy is not None:
                spy.send_signal(2)  # py-spy writes its flame graph on SIGINT
                spy.wait(timeout=60)
            rows.append((level, len(latencies), failures, percentile(latencies, 0.5) * 1000,
                         percentile(latencies, 0.9) * 1000, percentile(latencies, 0.99) * 1000,
                         max(latencies) * 1000, statistics.fmean(latencies) * 1000, len(latencies) / elapsed,
                         together / checks if checks else 0.0, engine_s / checks * 1000 if checks else 0.0,
                         *cpu_us, kept_to))
        print(f"\nPOST /api/v1/checks, {args.households:,}-household city, {args.client} client, "
              f"server RSS {tree_rss_mib(server.pid):,.0f} MiB (with its check process)")
        # Then, per check (the server's /metrics): how many requests its engine call took together,
        # and how long that call took (at concurrency 32 a check waits for about two); and the
        # CPU a request cost the server, its check process and the load generator.
        print("| concurrency | requests | non-200 | p50 ms | p90 ms | p99 ms | max ms | mean ms | requests/s "
              "| gathered | engine ms | server µs | checker µs | client µs |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print("| {} | {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.1f} | {:.1f} "
                  "| {:.0f} | {:.0f} | {:.0f} |".format(*row[:-1]))
        for level, *_, server_us, checker_us, client_us, kept_to in rows:
            if level > 1:
                print(f"concurrency {level}: {cpu_bound(server_us, checker_us, client_us, checker_cores=kept_to)}")
        batch = xlsx_batch(url, token, city / "roll.parquet", args.xlsx_rows, workdir, as_of) if args.xlsx_rows else None
        if args.json:
            names = ("concurrency", "requests", "failures", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms",
                     "requests_per_s", "gathered_mean", "engine_ms_mean", "server_cpu_us", "checker_cpu_us",
                     "client_cpu_us", "checker_cores")
            args.json.write_text(json.dumps({
                "households": args.households, "first_check_s": index_s, "server_rss_mib": tree_rss_mib(server.pid),
                "client": args.client, "checks": [dict(zip(names, row, strict=True)) for row in rows],
                "xlsx_batch": batch}, indent=2))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"data kept in {workdir}")


if __name__ == "__main__":
    main()
