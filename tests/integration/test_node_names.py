"""Node names on a real database (SQLite and PostgreSQL): a daemon takes its configured (or
default) name when no running daemon holds it, else the next free one; daemons starting at
the same instant in several processes take distinct names; a clean stop frees its name; and a
daemon releases at once the jobs of a killed daemon of the same machine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.app.running import claim_node
from daemon.config import Config
from daemon.errors import NodeInUse
from daemon.intake import Intake
from daemon.jobs import JobStatus
from daemon.nodes import DAEMON_KEY, HOST, heartbeat
from daemon.pool import WorkerPool
from daemon.scheduler import Scheduler
from daemon.store import Store, open_store


def gone_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def config(make_config: Callable[..., Config], db_url: str) -> Config:
    return make_config(daemon={"node": "box"}, database={"url": db_url})


def test_a_second_daemon_takes_the_next_name_and_a_stopped_daemons_name_is_free(
    config: Config,
) -> None:
    stores = [open_store(config, migrate=True) for _ in range(4)]
    try:
        first, second, third, fourth = stores
        assert claim_node(config, first) == "box"
        assert first.node == first.results.node == "box"
        assert claim_node(config, second) == "box-2"  # "box" runs (this very process)
        beats = first.results.states(DAEMON_KEY)
        assert sorted(beats) == ["box", "box-2"] and beats["box-2"][0]["host"] == HOST

        # a clean stop frees the name; a killed daemon of this machine holds none
        first.results.set_state(DAEMON_KEY, heartbeat(1, stopped=True), first.now())
        second.results.set_state(DAEMON_KEY, heartbeat(gone_pid()), second.now())
        assert claim_node(config, third) == "box"
        assert claim_node(config, fourth) == "box-2"

        # a name another machine's running daemon holds is skipped; its holding the
        # configured name itself refuses the start, saying so
        other = Store(first.engine, node="box-3")
        other.results.set_state(DAEMON_KEY, {"host": "elsewhere", "pid": 9}, other.now())
        fifth = open_store(config)
        stores.append(fifth)
        assert claim_node(config, fifth) == "box-4"
        taken = Store(first.engine, node="box")
        taken.results.set_state(DAEMON_KEY, {"host": "elsewhere", "pid": 9}, taken.now())
        stores.append(sixth := open_store(config))
        with pytest.raises(NodeInUse, match="node 'box' is in use by a running daemon on else"):
            claim_node(config, sixth)
    finally:
        for store in stores:
            store.close()


STARTER = """
import json, sys, time
from daemon import config
from daemon.app.running import claim_node
from daemon.store import open_store
cfg = config.from_mapping(json.loads(sys.argv[1]))
store = open_store(cfg)
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
print(claim_node(cfg, store), flush=True)
time.sleep(float(sys.argv[2]) + 4 - time.time())  # running while the others take theirs
"""


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_daemons_starting_at_the_same_instant_take_distinct_names(config: Config) -> None:
    open_store(config, migrate=True).close()
    raw = json.dumps({"database": {"url": config.database.url}, "daemon": {"node": "box"}})
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, raw, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _out, err in results]
    names = sorted(out.strip() for out, _err in results)
    assert names == ["box", "box-2", "box-3", "box-4"], results


def test_the_jobs_of_a_killed_daemon_of_this_machine_are_released_at_once(
    config: Config, tmp_path: Path
) -> None:
    store = open_store(config, migrate=True)
    sibling = Store(store.engine, node="box-2")
    try:
        assert claim_node(config, store) == "box"
        sibling.results.set_state(DAEMON_KEY, heartbeat(gone_pid()), sibling.now())
        job_id = store.enqueue(str(tmp_path / "a.wav"), "a" * 64, 10, store.now()).job_id
        owner = f"box-2:{gone_pid()}:1:w0:{gone_pid()}"  # its worker died with it
        [claimed] = sibling.claim(owner, 1, sibling.now(), 600.0)
        # a node of another name stands for another machine (as a fleet's tests run them):
        # its dead workers' jobs wait for their leases
        alpha = Store(store.engine, node="alpha")
        alpha.results.set_state(DAEMON_KEY, heartbeat(gone_pid()), alpha.now())
        other_id = store.enqueue(str(tmp_path / "b.wav"), "b" * 64, 10, store.now()).job_id
        alpha.claim(f"alpha:{gone_pid()}:1:w0:{gone_pid()}", 1, alpha.now(), 600.0)
        pool = WorkerPool(config=config, owner_prefix="box:1:1")
        sched = Scheduler(config, store, Intake(config, store), pool)
        sched._recover_abandoned(store.now())
        job = store.get(job_id)
        assert job is not None and job.status is JobStatus.QUEUED and claimed.id == job_id
        assert job.attempts == 0  # the attempt is not counted: the job did nothing wrong
        other = store.get(other_id)
        assert other is not None and other.status is JobStatus.RUNNING
    finally:
        store.close()
