"""Warm worker processes: models load once per worker, however many jobs it runs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.config import Config
from daemon.intake import Intake
from daemon.jobs import JobStatus
from daemon.pool import Report, WorkerPool
from daemon.store import open_store, utcnow
from tests.conftest import need_eval

pytestmark = [pytest.mark.model, pytest.mark.eval]


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_two_workers_four_files_models_loaded_once_per_worker(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(pipeline={"profile": "fast"})
    store = open_store(config)
    inbox = config.watch.folders[0]
    inbox.mkdir(parents=True)
    for name in ("LJ001-0002", "LJ001-0008", "LJ001-0013", "librivox-0880"):
        shutil.copy(need_eval("asr_en", f"{name}.wav"), inbox / f"{name}.wav")
    intake = Intake(config, store)
    intake.rescan(utcnow())
    time.sleep(config.watch.stable_seconds)
    assert len(intake.poll(utcnow())) == 4

    pool = WorkerPool(config=config, owner_prefix="test")
    reports: list[Report] = []
    try:
        pool.resize(workers=2, threads=1)
        deadline = time.monotonic() + 300
        while len(reports) < 4 and time.monotonic() < deadline:
            for index in pool.idle_slots():
                jobs = store.claim(pool.owner(index), 1, utcnow(), 120, profile="fast")
                if jobs:
                    pool.submit(jobs[0], index, workers=2)
            reports += pool.collect(timeout=1.0)
    finally:
        assert pool.stop(timeout=60)
    assert len(reports) == 4 and all(r.ok for r in reports)
    pids = {r.pid for r in reports}
    assert len(pids) == 2, "both workers took jobs"
    for pid in pids:
        # a worker's load counter after its last job, each model once: Whisper base (language
        # detection), tiny.en (the fast profile's English model) and the diarization pipeline
        assert max(r.model_loads for r in reports if r.pid == pid) == 3
    jobs = store.jobs()
    assert all(j.status is JobStatus.DONE for j in jobs)
    assert {j.metrics["threads"] for j in jobs} == {1}
    assert {j.metrics["workers"] for j in jobs} == {2}
    assert all(j.metrics["peak_rss"] > 0 and j.metrics["cpu_seconds"] > 0 for j in jobs)
