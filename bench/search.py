"""Full-text search over many transcripts: the database's own index (SQLite's FTS5, PostgreSQL's
GIN index of to_tsvector) against a plain scan of the lines (``LIKE '%word%'``, what a search
without an index does) in the same database, in the same run.

    python -m bench.search [--transcripts 10000] [--lines 60] [--postgres]

Synthetic transcripts (their words drawn from a fixed vocabulary with a Zipf-like spread, as a
real language's are, and a few rare words) are kept through the same code as a done job's
(:meth:`daemon.transcripts.Transcripts.put`); then each kind of query (a common word, two words,
a phrase, a rare word, a word that is nowhere) is timed several times.  ``--postgres`` runs the
same on a PostgreSQL server the bench starts (Debian's package, as the tests do).  Results go
to bench/results/search.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from daemon.db import make_engine, upgrade
from daemon.store import Store

REPO = Path(__file__).resolve().parents[1]
VOCABULARY = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "is",
    "it",
    "you",
    "we",
    "they",
    "budget",
    "release",
    "meeting",
    "report",
    "plan",
    "customer",
    "team",
    "project",
    "server",
    "data",
    "model",
    "speech",
    "voice",
    "question",
    "answer",
    "week",
    "friday",
    "monday",
    "money",
    "sales",
    "market",
    "product",
    "design",
    "test",
    "build",
    "deploy",
    "price",
    "cost",
    "time",
    "year",
    "people",
    "work",
    "change",
    "system",
    "problem",
    "idea",
    "group",
    "number",
    "point",
    "fact",
    "case",
    "part",
    "place",
    "thing",
    "way",
    "day",
    "hand",
    "eye",
]
RARE = ["zanzibar", "quokka", "ptarmigan", "vermilion", "okonkwo"]
QUERIES = {
    "common word": "budget",
    "two words": "budget friday",
    "phrase": '"new release"',
    "rare word": "quokka",
    "absent word": "xylophonist",
}


def transcript(rng: random.Random, lines: int) -> dict[str, Any]:
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    segments = []
    for i in range(lines):
        words = rng.choices(VOCABULARY, weights, k=rng.randint(6, 18))
        if rng.random() < 0.01:
            words.insert(rng.randrange(len(words)), rng.choice(RARE))
        if rng.random() < 0.05:
            words[rng.randrange(len(words)) :] = ["new", "release"]
        segments.append(
            {
                "start": i * 4.0,
                "end": i * 4.0 + 3.5,
                "speaker": f"SPEAKER_{i // 5 % 3:02d}",
                "text": " ".join(words).capitalize() + ".",
            }
        )
    return {"segments": segments, "speakers": ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]}


def fill(store: Store, count: int, lines: int, seed: int = 0) -> float:
    """``count`` done jobs with transcripts of ``lines`` lines; seconds it took."""
    rng = random.Random(seed)
    started = time.perf_counter()
    now = datetime(2026, 12, 6)
    for n in range(count):
        path = f"/bench/{n:05d}.wav"
        sha = hashlib.sha256(path.encode()).hexdigest()
        job_id = store.enqueue(path, sha, 1, now).job_id
        (job,) = store.claim("bench", 1, now, 600, job_id=job_id)
        store.finish(job.lease, now, [], {}, (transcript(rng, lines), {}))
    return time.perf_counter() - started


def timed(run: Any, repeat: int = 5) -> dict[str, float]:
    times, hits = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        hits = run()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
        "hits": hits,
    }


def scan(store: Store, words: str, limit: int) -> int:
    """The baseline: every line read and matched with LIKE (no index), the same limit."""
    terms = [w.strip('"').lower() for w in words.replace('"', ' " ').split() if w != '"']
    phrase = words.startswith('"')
    clauses = (
        ["lower(text) LIKE :p"]
        if phrase
        else [f"lower(text) LIKE :w{i}" for i in range(len(terms))]
    )
    params: dict[str, Any] = {"n": limit}
    if phrase:
        params["p"] = f"%{' '.join(terms)}%"
    else:
        params |= {f"w{i}": f"%{t}%" for i, t in enumerate(terms)}
    query = f"SELECT job_id, start FROM transcript_lines WHERE {' AND '.join(clauses)} LIMIT :n"
    with store.engine.connect() as conn:
        return len(conn.execute(text(query), params).all())


def measure(url: str, count: int, lines: int) -> dict[str, Any]:
    engine = make_engine(url)
    upgrade(engine)
    store = Store(engine)
    filled = fill(store, count, lines)
    out: dict[str, Any] = {
        "transcripts": count,
        "lines": count * lines,
        "fill_seconds": round(filled, 1),
    }
    for name, words in QUERIES.items():
        indexed = timed(lambda words=words: len(store.transcripts.search(words, 50)))
        plain = timed(lambda words=words: scan(store, words, 50))
        out[name] = {
            "index": indexed,
            "scan": plain,
            "scan_over_index": round(plain["median_ms"] / max(indexed["median_ms"], 0.01), 1),
        }
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transcripts", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=60)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/jobs.db", args.transcripts, args.lines)
        if args.postgres:
            from tests.pgserver import PostgresServer

            server = PostgresServer()
            server.start()
            try:
                results["postgresql"] = measure(server.database(), args.transcripts, args.lines)
            finally:
                server.stop()
    for backend, figures in results.items():
        print(
            f"{backend}: {figures['transcripts']} transcripts, {figures['lines']} lines "
            f"(kept in {figures['fill_seconds']} s)"
        )
        for name in QUERIES:
            f = figures[name]
            print(
                f"  {name:12s} index {f['index']['median_ms']:8.2f} ms ({f['index']['hits']} hits)"
                f"   scan {f['scan']['median_ms']:9.2f} ms   scan/index {f['scan_over_index']}x"
            )
    out = REPO / "bench" / "results" / "search.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
