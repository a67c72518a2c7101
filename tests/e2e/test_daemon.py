"""The daemon as a user runs it: a real process, a real folder, a real recording."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import need_eval, write_config

pytestmark = [pytest.mark.model, pytest.mark.eval]


def test_drop_file_into_running_daemon(tmp_path: Path, model_cache: Path) -> None:
    src = need_eval("asr_en", "jfk.flac")
    cfg = write_config(tmp_path, model_cache)
    cmd = [sys.executable, "-m", "daemon", "--config", str(cfg)]
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([*cmd, "run"], stdout=subprocess.PIPE, stderr=log, text=True)
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
            out = subprocess.run(
                [*cmd, "status", "--json"], capture_output=True, text=True, check=True
            )
            jobs = json.loads(out.stdout)
            if jobs:
                job = jobs[0]
                seen.add(job["status"])
                if job["status"] in ("done", "failed"):
                    break
            time.sleep(0.5)
        assert job.get("status") == "done", job
        assert {"queued", "running"} & seen or job["status"] == "done"
        names = sorted(Path(p).name for p in job["outputs"])  # type: ignore[attr-defined]
        assert names == ["talk.json", "talk.rttm", "talk.srt", "talk.txt", "talk.vtt"]
        assert "ask not what your country" in (tmp_path / "out" / "talk.txt").read_text()
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
