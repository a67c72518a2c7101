"""The daemon as a process, stopped politely and killed rudely, never loses or repeats a job."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from daemon import config as config_mod
from daemon.jobs import JobStatus
from daemon.store import JobRecord, Store, open_store
from tests.conftest import lj_clips, speech_file, write_config

pytestmark = [pytest.mark.model, pytest.mark.eval]

# small chunks and diarization windows: many checkpoints in a short test
EXTRA = """
[profiles.balanced]
max_chunk_seconds = 10.0
[diarization]
window_seconds = 20.0
"""


def daemon_cmd(cfg: Path) -> list[str]:
    return [sys.executable, "-m", "daemon", "--config", str(cfg)]


@contextmanager
def running(cfg: Path, log: Path) -> Iterator[subprocess.Popen[str]]:
    """``transcribd run`` as a process, up and watching; killed at the end if still alive."""
    with log.open("a") as err:
        proc = subprocess.Popen(
            [*daemon_cmd(cfg), "run"], stdout=subprocess.PIPE, stderr=err, text=True
        )
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            assert "watching" in line, log.read_text()[-3000:]
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()


def wait_for(
    store: Store, test: Callable[[list[JobRecord]], bool], timeout: float, what: str
) -> list[JobRecord]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = store.jobs()
        if test(jobs):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {[(j.id, j.status) for j in jobs]}")


def outputs_of(job: JobRecord) -> dict[str, Any]:
    """A job's transcript files, comparable across runs (the source path differs)."""
    out: dict[str, Any] = {}
    for p in map(Path, job.outputs):
        text = p.read_text()
        if p.suffix == ".json":
            doc = json.loads(text)
            doc.pop("source")
            out[p.suffix] = doc
        else:
            out[p.suffix] = text
    return out


def computed(job: JobRecord, steps: tuple[str, ...] = ("asr", "diarize_window")) -> int:
    return sum(job.metrics["steps"]["computed"].get(s, 0) for s in steps)


@pytest.mark.slow
def test_sigterm_during_a_long_job_checkpoints_and_resumes(
    tmp_path: Path, model_cache: Path
) -> None:
    speech_file(tmp_path / "inbox" / "lecture.wav", lj_clips())
    # write_config ends inside [daemon]
    cfg = write_config(tmp_path, model_cache, "stop_seconds = 20.0\n" + EXTRA)
    config = config_mod.load(cfg)
    store = open_store(config)
    log = tmp_path / "daemon.log"
    with running(cfg, log) as proc:
        wait_for(
            store,
            lambda js: bool(js) and js[0].status is JobStatus.RUNNING and js[0].progress >= 0.3,
            240,
            "the job to get under way",
        )
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        took = time.monotonic() - stopped_at
    assert code == 0, log.read_text()[-3000:]
    assert took <= config.daemon.stop_seconds + 5, took
    (job,) = store.jobs()
    assert job.status is JobStatus.QUEUED and job.lease_owner is None, job
    assert 0.3 <= job.progress < 1.0
    assert job.attempts == 0  # a graceful stop is not a failed attempt
    assert not list((tmp_path / "work").glob("*.pcm*"))  # its spool went as it stopped

    summary = subprocess.run(
        [*daemon_cmd(cfg), "run", "--once"], capture_output=True, text=True, timeout=600
    )
    assert summary.returncode == 0, summary.stderr[-3000:]
    (job,) = store.jobs()
    assert job.status is JobStatus.DONE
    steps = job.metrics["steps"]
    assert steps["cached"].get("asr", 0) >= 1, steps  # resumed where it stopped
    assert "resumes from its finished steps" in log.read_text()


@pytest.mark.slow
def test_sigkill_at_random_instants_loses_and_repeats_nothing(
    tmp_path: Path, model_cache: Path
) -> None:
    clips = lj_clips()
    sources = [speech_file(tmp_path / "src" / f"talk{i}.wav", clips[i::3]) for i in range(3)]

    def setup(root: Path) -> tuple[Path, Store]:
        (root / "inbox").mkdir(parents=True)
        for s in sources:
            shutil.copy(s, root / "inbox" / s.name)
        cfg = write_config(root, model_cache, EXTRA)
        return cfg, open_store(config_mod.load(cfg))

    # a clean run, for reference
    clean_cfg, clean_store = setup(tmp_path / "clean")
    res = subprocess.run(
        [*daemon_cmd(clean_cfg), "run", "--once"], capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stderr[-3000:]
    clean = {Path(j.path).name: j for j in clean_store.jobs()}
    assert all(j.status is JobStatus.DONE for j in clean.values())

    # the same files, with the daemon killed at random instants while it works
    cfg, store = setup(tmp_path / "chaos")
    log = tmp_path / "chaos.log"
    rng = random.Random(20261124)
    orphans: set[int] = set()
    kills = 0
    while kills < 4:
        with running(cfg, log) as proc:
            jobs = wait_for(
                store,
                lambda js: (
                    any(j.status is JobStatus.RUNNING and j.progress > 0.1 for j in js)
                    or (len(js) == 3 and all(j.status is JobStatus.DONE for j in js))
                ),
                300,
                "work under way",
            )
            if all(j.status is JobStatus.DONE for j in jobs) and len(jobs) == 3:
                break
            time.sleep(rng.uniform(0.0, 3.0))
            orphans |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            proc.kill()
        kills += 1

    # then it runs undisturbed to the end
    res = subprocess.run(
        [*daemon_cmd(cfg), "run", "--once"], capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert kills >= 2, "the daemon finished before it could be killed twice"

    # workers that outlived their killed parent stop by themselves
    _gone, alive = psutil.wait_procs([p for p in map(_proc, orphans) if p is not None], timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"orphaned workers still running: {alive}"

    jobs = store.jobs()
    assert len(jobs) == 3, [(j.id, j.path) for j in jobs]
    chaos = {Path(j.path).name: j for j in jobs}
    out_dir = tmp_path / "chaos" / "out"
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        Path(p).name for j in jobs for p in j.outputs
    )  # exactly one set of outputs per job: no "-1" copies, no temp files
    for name, job in chaos.items():
        assert job.status is JobStatus.DONE, (name, job.error)
        assert outputs_of(job) == outputs_of(clean[name]), name
    resumed = [j for j in chaos.values() if sum(j.metrics["steps"]["cached"].values()) > 0]
    assert resumed, "no job reused a cached step after a kill"
    assert sum(map(computed, chaos.values())) < sum(map(computed, clean.values()))


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@pytest.mark.slow  # a worker killed and a job retried: CI runs it with -m slow
def test_worker_killed_like_the_oom_killer_retries_lighter(
    tmp_path: Path, model_cache: Path
) -> None:
    speech_file(tmp_path / "inbox" / "talk.wav", lj_clips()[:6])
    cfg = write_config(tmp_path, model_cache, EXTRA)
    store = open_store(config_mod.load(cfg))
    log = tmp_path / "daemon.log"
    with running(cfg, log) as proc:
        (job,) = wait_for(
            store,
            lambda js: bool(js) and js[0].status is JobStatus.RUNNING and js[0].progress > 0.1,
            240,
            "the job to get under way",
        )
        assert job.profile == "balanced" and job.lease_owner
        worker = int(job.lease_owner.rsplit(":", 1)[1])
        psutil.Process(worker).send_signal(signal.SIGKILL)  # what the kernel's OOM killer does
        (job,) = wait_for(store, lambda js: js[0].status is JobStatus.DONE, 300, "the retried job")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert job.options.oom_profile == "fast" and job.profile == "fast"
    assert job.metrics["profile"] == "fast" and job.attempts == 2
    text = log.read_text()
    assert "killed by SIGKILL (out of memory?); retrying with the fast profile" in text
    assert "worker process" in text and "replacing it" in text
