"""Claim throughput and latency with N concurrent claimers, on SQLite and on PostgreSQL.

    python -m bench.claims [--jobs 1000] [--claimers 1 4 16] [--backends sqlite postgresql]

For each backend, each claim method and each N: a fresh database with ``--jobs`` tiny queued
jobs, then N claimer processes started together; each claims one job at a time and finishes it
at once, until the queue is empty.  Claim methods: ``skip-locked`` is ``Store.claim``, the
daemon's one statement; ``select-then-update`` is the claim it replaced (the baseline): read the
ready ids, then a guarded UPDATE per id.  Reported: jobs per second over
the whole run, its ratio to one claimer on the same backend (measured in the same run), the
median and 99th-percentile latency of one claim, how evenly the claimers shared the work, and
the number of jobs claimed twice (must be 0).  PostgreSQL is a throwaway server started for the
run (see tests/pgserver.py).  Results go to bench/results/claims.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def select_then_update(store: Any, owner: str, limit: int, now: Any, lease: float) -> list[Any]:
    """The claim before the fleet work (the baseline): read the ready ids, then one guarded
    UPDATE per id until ``limit`` succeed (a claimer that lost a row to another waits for that
    row's lock, then moves on)."""
    from sqlalchemy import select, update

    from daemon.jobs import JobStatus
    from daemon.models import Job
    from daemon.rows import JOBS, from_row

    claimed: list[Any] = []
    values = store._claimed(owner, now, lease, None)  # what the daemon's claim sets
    with store.engine.begin() as conn:
        for (job_id,) in conn.execute(store._ready(now).limit(limit * 4)).all():
            if len(claimed) >= limit:
                break
            guarded = update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            if conn.execute(guarded.values(**values)).rowcount == 1:
                claimed.append(from_row(conn.execute(select(JOBS).where(Job.id == job_id)).one()))
    return claimed


def claimer(url: str, name: str, start_at: float, method: str) -> None:
    """One claimer process: claim and finish until nothing is left; prints its record."""
    from sqlalchemy import text

    from daemon.db import make_engine
    from daemon.store import Store

    store = Store(make_engine(url), node=name)
    store.now()  # connect before the start
    while time.time() < start_at:
        time.sleep(0.001)
    latencies, noops, ids = [], [], []
    while True:
        t = time.perf_counter()
        with store.engine.connect() as conn:  # a no-op round trip, for scale
            conn.execute(text("SELECT 1"))
        noops.append(time.perf_counter() - t)
        now = store.now()
        t = time.perf_counter()
        if method == "skip-locked":
            jobs = store.claim(f"{name}:w0", 1, now, 60.0)
        else:
            jobs = select_then_update(store, f"{name}:w0", 1, now, 60.0)
        latencies.append(time.perf_counter() - t)
        if not jobs:
            break
        job = jobs[0]
        store.finish(job.lease, now, [])
        ids.append(job.id)
    record = {"ids": ids, "latencies": latencies[:-1], "noops": noops, "ended": time.time()}
    print(json.dumps(record))


def fill(url: str, jobs: int) -> None:
    from daemon.db import make_engine, upgrade
    from daemon.store import Store, utcnow

    engine = make_engine(url)
    upgrade(engine)
    store = Store(engine)
    now = utcnow()
    for i in range(jobs):
        store.enqueue(f"/bench/{i}.wav", f"{i:064x}", 1000, now)
    engine.dispose()


def run(url: str, jobs: int, n: int, method: str) -> dict[str, Any]:
    fill(url, jobs)
    start_at = time.time() + 2.0 + 0.1 * n  # every process connected by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.claims",
                "--claimer",
                url,
                f"c{i}",
                str(start_at),
                method,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    records = [json.loads(p.communicate(timeout=900)[0]) for p in procs]
    ids = [i for r in records for i in r["ids"]]
    latencies = sorted(x for r in records for x in r["latencies"])
    noop = statistics.median(x for r in records for x in r["noops"])
    wall = max(r["ended"] for r in records) - start_at
    shares = [len(r["ids"]) for r in records]
    return {
        "method": method,
        "claimers": n,
        "jobs": len(ids),
        "claimed_twice": len(ids) - len(set(ids)),
        "missed": jobs - len(set(ids)),
        "wall_seconds": round(wall, 3),
        "jobs_per_second": round(len(ids) / wall, 1),
        "claim_ms_p50": round(1000 * statistics.median(latencies), 2),
        "claim_ms_p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
        "select1_ms_p50": round(1000 * noop, 2),
        "claim_over_select1": round(statistics.median(latencies) / noop, 1),
        "share_min_max": [min(shares), max(shares)],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--claimer":
        claimer(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--claimers", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.pgserver import PostgresServer

    server = PostgresServer()
    rows: list[dict[str, Any]] = []
    try:
        if "postgresql" in args.backends:
            server.start()
        with tempfile.TemporaryDirectory() as tmp:
            for backend in args.backends:
                for method in ("select-then-update", "skip-locked"):
                    base = None
                    for n in args.claimers:
                        if backend == "sqlite":
                            url = f"sqlite:///{Path(tmp) / f'claims-{len(rows)}.db'}"
                        else:
                            url = server.database("claims")
                        row = {"backend": backend, **run(url, args.jobs, n, method)}
                        base = base or row["jobs_per_second"]
                        row["ratio_to_one"] = round(row["jobs_per_second"] / base, 2)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    finally:
        server.stop()
    out = REPO / "bench" / "results" / "claims.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        "\n| backend | claim | claimers | jobs/s | × one claimer | claim p50 ms | p99 ms | "
        "SELECT 1 p50 ms | claim ÷ SELECT 1 | share min–max | claimed twice |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["share_min_max"]
        print(
            f"| {r['backend']} | {r['method']} | {r['claimers']} | {r['jobs_per_second']} | "
            f"{r['ratio_to_one']}× | {r['claim_ms_p50']} | {r['claim_ms_p99']} | "
            f"{r['select1_ms_p50']} | {r['claim_over_select1']} | {lo}–{hi} | "
            f"{r['claimed_twice']} |"
        )


if __name__ == "__main__":
    main()
