"""The daemon as a user runs it: a real process, a real folder, a real recording."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import need_eval, write_config
from tests.e2e.running import pause

pytestmark = [pytest.mark.model, pytest.mark.eval]


def test_drop_file_into_running_daemon(tmp_path: Path, model_cache: Path) -> None:
    src = need_eval("asr_en", "jfk.flac")
    cfg = write_config(tmp_path, model_cache)
    cmd = [sys.executable, "-m", "daemon", "--config", str(cfg)]
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(  # the systemd unit's UMask
        [*cmd, "run"], stdout=subprocess.PIPE, stderr=log, text=True, umask=0o027
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "watching" in line, line
        # written under a temporary name, then renamed in: the usual way to drop a file
        shutil.copy(src, tmp_path / "inbox" / ".talk.flac.part")
        (tmp_path / "inbox" / ".talk.flac.part").rename(tmp_path / "inbox" / "talk.flac")
        deadline = time.monotonic() + 180
        job: dict[str, object] = {}
        seen = set()
        while time.monotonic() < deadline:
            asked = time.monotonic()
            out = subprocess.run(
                [*cmd, "status", "--json"], capture_output=True, text=True, check=True
            )
            jobs = json.loads(out.stdout)
            if jobs:
                job = jobs[0]
                seen.add(job["status"])
                if job["status"] in ("done", "failed"):
                    break
            pause(asked)
        assert job.get("status") == "done", job
        assert {"queued", "running"} & seen or job["status"] == "done"
        names = sorted(Path(p).name for p in job["outputs"])  # type: ignore[attr-defined]
        assert names == ["talk.json", "talk.rttm", "talk.srt", "talk.txt", "talk.vtt"]
        assert "ask not what your country" in (tmp_path / "out" / "talk.txt").read_text()
        modes = {oct(Path(p).stat().st_mode & 0o777) for p in job["outputs"]}  # type: ignore[attr-defined]
        assert modes == {"0o640"}  # group-readable under UMask=0027, not mkstemp's 0600
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            assert proc.stdout is not None
            proc.stdout.close()
            log.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_next_job_starts_when_a_worker_reports_not_at_the_next_tick(
    tmp_path: Path, model_cache: Path
) -> None:
    clips = [need_eval("asr_en", n) for n in ("jfk.flac", "LJ001-0001.wav", "LJ001-0002.wav")]
    tick = 20.0
    cfg = write_config(tmp_path, model_cache, "max_workers = 1\n").read_text()
    cfg = cfg.replace("tick_seconds = 0.5", f"tick_seconds = {tick}")
    (tmp_path / "config.toml").write_text(cfg)
    for clip in clips:
        (tmp_path / "inbox").mkdir(exist_ok=True)
        shutil.copy(clip, tmp_path / "inbox" / clip.name)
    cmd = [sys.executable, "-m", "daemon", "--config", str(tmp_path / "config.toml")]
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([*cmd, "run"], stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None  # status reads the database once the daemon made it
        assert "watching" in proc.stdout.readline(), (tmp_path / "daemon.log").read_text()
        deadline = time.monotonic() + 4 * tick + 120
        jobs: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            out = subprocess.run(
                [*cmd, "status", "--json"], capture_output=True, text=True, check=True
            )
            jobs = json.loads(out.stdout)
            if len(jobs) == 3 and all(j["status"] == "done" for j in jobs):
                break
            time.sleep(1.0)
        log_text = (tmp_path / "daemon.log").read_text()
        assert [j["status"] for j in jobs] == ["done"] * 3, (jobs, log_text)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert proc.stdout is not None
        proc.stdout.close()
        log.close()
    runs = sorted(
        (datetime.fromisoformat(j["started_at"]), datetime.fromisoformat(j["finished_at"]))
        for j in jobs
    )
    # one worker: each job starts when the one before it ends, not at the next 20-s tick
    gaps = [(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(runs)]
    assert all(0 <= g < 3.0 for g in gaps), gaps
