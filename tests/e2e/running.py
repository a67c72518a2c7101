"""A daemon as users run it, for end-to-end tests: ``transcribd run`` as a child process,
asserted on through ``status --json`` and its log."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

Jobs = list[dict[str, Any]]


def pause(asked: float) -> None:
    """Wait before asking ``status`` again: at least half a second, and at least as long as
    the last call took (a ``status`` process is a second or two of CPU on a 2-core machine:
    polling back to back would take a core from the daemon under test)."""
    time.sleep(max(0.5, time.monotonic() - asked))


class Daemon:
    """``transcribd run`` as a child process, its log in a file."""

    def __init__(self, cfg: Path, name: str = "daemon") -> None:
        self.cmd = [sys.executable, "-m", "daemon", "--config", str(cfg)]
        self.log_path = cfg.parent / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*self.cmd, "run"], stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "watching" in line, (line, self.log())

    def log(self) -> str:
        return self.log_path.read_text()

    def status(self, *args: str) -> str:
        out = subprocess.run([*self.cmd, "status", *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def jobs(self) -> Jobs:
        return list(json.loads(self.status("--json")))

    def wait(self, ready: Callable[[Jobs], bool], timeout: float = 120.0) -> Jobs:
        deadline = time.monotonic() + timeout
        asked = time.monotonic()
        jobs = self.jobs()
        while not ready(jobs) and time.monotonic() < deadline:
            pause(asked)
            asked = time.monotonic()
            jobs = self.jobs()
        assert ready(jobs), (jobs, self.log()[-3000:])
        return jobs

    def wait_log(self, words: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while words not in self.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert words in self.log(), self.log()[-3000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self._log.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.stop(signal.SIGKILL)


def drop(src: Path, dst: Path) -> Path:
    """Put a file into a watched folder the usual way: written aside, renamed in."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copy(src, tmp)
    tmp.rename(dst)
    return dst


def all_ended(n: int) -> Callable[[Jobs], bool]:
    return lambda jobs: (
        len(jobs) >= n
        and all(j["status"] in ("done", "failed", "superseded", "cancelled") for j in jobs)
    )
