"""One live job per file however many intakes see it at once: real processes, one SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from daemon.store import Store

ENQUEUE = """
import sys, time
from datetime import datetime
from daemon.db import make_engine
from daemon.store import Store
store = Store(make_engine(sys.argv[1]))
start = float(sys.argv[2])
while time.time() < start:
    pass
res = store.enqueue("/in/talk.wav", "a" * 64, 10, datetime(2026, 1, 1))
print(res.job_id, res.created)
"""


def test_intakes_enqueueing_one_file_at_once_make_one_job(store: Store, tmp_path: Path) -> None:
    import time

    url = str(store.engine.url)
    start = time.time() + 2.0  # all processes insert within the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENQUEUE, url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _out, err in results]
    answers = [out.split() for out, _err in results]
    assert len({job_id for job_id, _created in answers}) == 1
    assert sorted(created for _job_id, created in answers) == ["False"] * 5 + ["True"]
    assert len(store.jobs()) == 1
