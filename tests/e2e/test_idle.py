"""An idle daemon gives its memory back (issue 35): a worker idle for ``model_idle_seconds``
exits, the daemon's main process never loads CTranslate2, torch or pyannote, and a job after the
idle time starts a worker again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from daemon.sysload import tree_rss
from tests.conftest import need_eval, write_config
from tests.e2e.running import Daemon, all_ended, drop

pytestmark = [pytest.mark.model, pytest.mark.eval]

IDLE_TREE_BYTES = 250_000_000
"""The whole tree of an idle daemon: its main process, the resource tracker, no worker."""
WORKER_RUNTIMES = ("libctranslate2", "libtorch", "pyannote", "faster_whisper", "ctranslate2")
"""What only workers load: CTranslate2 (Whisper), torch (pyannote's networks and imports)."""


def mapped(pid: int) -> set[str]:
    """Which of :data:`WORKER_RUNTIMES` the process has mapped (shared libraries, and the
    compiled extensions of the Python packages)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in WORKER_RUNTIMES if name in maps}


def children(pid: int) -> list[str]:
    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            out.append(" ".join(child.cmdline()))
        except psutil.Error:
            continue
    return out


def wait_for(condition: Callable[[], bool], timeout: float, what: str, daemon: Daemon) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert condition(), (what, daemon.log()[-3000:])


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_an_idle_daemon_is_small_and_its_main_process_lean(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    clip = need_eval("asr_en", "jfk.flac")
    cfg = write_config(tmp_path, model_cache, "model_idle_seconds = 3\n")  # [daemon]
    daemon = Daemon(cfg)
    daemons.append(daemon)
    main = daemon.proc.pid
    assert mapped(main) == set(), "the main process loaded a worker's runtime at start"

    drop(clip, tmp_path / "inbox" / "talk.flac")
    jobs = daemon.wait(all_ended(1), timeout=180)
    assert jobs[0]["status"] == "done", jobs
    assert mapped(main) == set(), "the main process loaded a worker's runtime for a job"

    # the worker exits once idle for model_idle_seconds; the resource tracker stays
    daemon.wait_log("exits after", timeout=30)
    wait_for(lambda: not any("spawn_main" in c for c in children(main)), 30, "exit", daemon)
    assert tree_rss(main) <= IDLE_TREE_BYTES, (tree_rss(main), children(main))

    # the next job starts a worker again
    drop(need_eval("asr_en", "LJ001-0001.wav"), tmp_path / "inbox" / "again.wav")
    jobs = daemon.wait(all_ended(2), timeout=180)
    assert [j["status"] for j in jobs] == ["done", "done"], jobs
    assert daemon.log().count("started worker") == 2
    assert "died" not in daemon.log()  # an idle exit is not a death
    assert daemon.stop() == 0
