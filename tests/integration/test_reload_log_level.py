"""A SIGHUP's ``daemon.log_level`` reaches the worker processes already running, not only the
daemon's own: a real daemon, a real worker, real (bad) input files, no model needed."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tests.conftest import write_config
from tests.e2e.running import Daemon, all_ended


def test_a_reloaded_log_level_reaches_a_running_worker(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(
        tmp_path, model_cache, 'log_level = "INFO"\n[diarization]\nenabled = false\n'
    )
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    d = Daemon(cfg)
    try:
        told_while_running(d, cfg)
    finally:
        if d.proc.poll() is None:
            d.stop(signal.SIGKILL)


def told_while_running(d: Daemon, cfg: Path) -> None:
    inbox = cfg.parent / "inbox"
    (inbox / "first.mp3").write_text("not audio\n" * 50)  # fails at once, in a worker
    d.wait(all_ended(1))
    [(worker, pid)] = re.findall(r"started worker (\d+) .* pid=(\d+)", d.log())
    assert " DEBUG " not in d.log()

    cfg.write_text(cfg.read_text().replace('log_level = "INFO"', 'log_level = "DEBUG"'))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("reload: ")
    (inbox / "second.mp3").write_text("still not audio\n" * 50)
    d.wait(all_ended(2))
    d.wait_log("DEBUG daemon.workers: worker")
    line = next(ln for ln in d.log().splitlines() if "DEBUG daemon.workers: worker" in ln)
    assert f"worker {worker} runs job 2" in line and f"pid={pid}" in line, line
    assert d.log().count("started worker") == 1  # the same process, told while it ran
    assert d.stop() == 0
