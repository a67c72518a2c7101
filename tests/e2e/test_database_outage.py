"""A short database outage costs seconds, not a lease: a real PostgreSQL server restarted under
a real daemon while it transcribes real speech (../shared/eval).  The job waits for the server
on its own node, keeping its lease, and ends done within seconds of the server's return, as
the same attempt: not after its lease (``daemon.lease_seconds``, 120 s) has run out."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon import config as config_mod
from daemon.jobs import JobStatus
from daemon.store import open_store
from tests.conftest import lj_clips, speech_file, start_postgres
from tests.e2e.running import Daemon, drop
from tests.pgserver import PostgresServer

pytestmark = [pytest.mark.model, pytest.mark.eval]

OUTAGE_SECONDS = 6.0
LEASE_SECONDS = 120.0


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own (it is stopped and started again)."""
    server = start_postgres(own=True)
    yield server
    server.stop()


def config_text(tmp_path: Path, model_cache: Path, url: str) -> str:
    return (
        f'[database]\nurl = "{url}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\nstable_seconds = 0.2\n'
        f'[output]\ndir = "{tmp_path / "out"}"\nformats = ["txt"]\n'
        '[pipeline]\nprofile = "fast"\nlanguage = "en"\n'
        f'[models]\ncache_dir = "{model_cache}"\n'
        "[diarization]\nenabled = false\n"
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.5\nmax_workers = 1\n'
        f'node = "solo"\nlease_seconds = {LEASE_SECONDS}\n'
    )


def wait_for(what: str, ready: Callable[[], object], timeout: float, log: Daemon) -> float:
    """Poll ``ready()`` until true; the monotonic time it turned true."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s\n{log.log()[-3000:]}"
        time.sleep(0.1)
    return time.monotonic()


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_a_running_job_outlasts_a_database_restart_on_its_own_lease(
    own_server: PostgresServer, tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    url = own_server.database()
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache, url))
    talk = speech_file(tmp_path / "talk.wav", lj_clips())  # about 2 minutes of speech
    daemons.append(d := Daemon(cfg))
    drop(talk, tmp_path / "inbox" / "talk.wav")

    d.wait_log("job 1 started", timeout=60)
    own_server.pg_ctl("stop")  # while the job transcribes: its next cached chunk cannot be stored
    stopped = time.monotonic()
    noticed = re.compile(r"job 1\b[^\n]*the database is unreachable")
    wait_for("the job noticed the outage", lambda: noticed.search(d.log()), 60, d)
    time.sleep(max(0.0, stopped + OUTAGE_SECONDS - time.monotonic()))
    own_server.pg_ctl("start")
    back, back_at = time.monotonic(), datetime.now()

    store = open_store(config_mod.load(cfg))
    try:

        def done() -> bool:
            job = store.get(1)
            return job is not None and job.status is JobStatus.DONE

        ended = wait_for("the job ended done", done, LEASE_SECONDS - 20, d)
        job = store.get(1)
    finally:
        store.close()
    assert d.stop() == 0
    log = d.log()
    assert job is not None and job.attempts == 1 and job.node == "solo", job  # the same attempt
    assert "the job keeps its lease" in log and "the database answers again" in log, log[-3000:]
    assert "recovered" not in log and "resumes once the database is back" not in log, log[-3000:]
    assert ended - back < 45.0, f"done {ended - back:.1f} s after the database came back"
    [stamp] = re.findall(r"^(\S+ \S+) INFO \S+ job 1: the database answers again", log, re.M)
    resumed = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") - back_at).total_seconds()
    assert resumed < 10.0, f"the job went on {resumed:.1f} s after the database came back"
    assert "Traceback" not in log, log[-3000:]
    assert (tmp_path / "out" / "talk.txt").read_text().strip()
    print(
        f"outage {back - stopped:.1f} s; the job went on {resumed:.1f} s and ended done "
        f"{ended - back:.1f} s after the database's return (lease {LEASE_SECONDS:g} s)"
    )
