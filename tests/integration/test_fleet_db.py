"""Several nodes on one database: claims from several processes, each node's state in
``status``/``nodes``, and a daemon that outlives its database server's restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from daemon import config as config_mod
from daemon.cli import cli
from daemon.config import Config
from daemon.db import make_engine, upgrade
from daemon.jobs import JobStatus
from daemon.nodes import node_views
from daemon.store import Store, open_store, utcnow
from tests.conftest import start_postgres, write_wav
from tests.pgserver import PostgresServer

CLAIMER = """
import json, sys, time
from daemon.db import make_engine
from daemon.store import Store
store = Store(make_engine(sys.argv[1]), node=sys.argv[2])
store.now()
while time.time() < float(sys.argv[3]):
    time.sleep(0.001)
ids = []
while jobs := store.claim(sys.argv[2] + ":w0", 2, store.now(), 60.0):
    for job in jobs:
        assert store.finish(job.lease, store.now(), [])
        ids.append(job.id)
print(json.dumps(ids))
"""


def test_claimers_in_several_processes_never_take_one_job_twice(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    for i in range(150):
        store.enqueue(f"/in/{i}.wav", f"{i:064x}", 10, utcnow())
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, db_url, f"n{i}", str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _out, err in results]
    claimed = [json.loads(out) for out, _err in results]
    every = [i for ids in claimed for i in ids]
    assert len(every) == len(set(every)) == 150  # each once, none left
    assert sum(1 for ids in claimed if ids) >= 2  # the claimers ran side by side
    jobs = store.jobs()
    assert all(j.status is JobStatus.DONE and j.node in {"n0", "n1", "n2", "n3"} for j in jobs)
    engine.dispose()


def test_status_and_nodes_show_each_node(
    make_config: Callable[..., Config], tmp_path: Path, db_url: str
) -> None:
    config = make_config(daemon={"node": "alpha"}, database={"url": db_url})
    store = open_store(config, migrate=True)
    beta = Store(store.engine, node="beta")
    now = utcnow()
    store.results.set_state("daemon", {"host": "box1", "pid": 11, "missing_folders": []}, now)
    beta.results.set_state("daemon", {"host": "box2", "pid": 22, "missing_folders": []}, now)
    plan = {"profile": "fast", "workers": 2, "threads": 1, "reason": "queue is long"}
    beta.results.set_state("plan", plan, now)
    job_id = beta.enqueue("/in/a.wav", "a" * 64, 10, now).job_id
    beta.claim("beta:1:1:w0:22", 1, now, 60.0)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[database]\nurl = "{config.database.url}"\n[watch]\nfolders = ["{tmp_path}"]\n'
        '[daemon]\nnode = "alpha"\n'
    )
    runner = CliRunner()
    table = runner.invoke(cli, ["--config", str(cfg), "status"]).output
    assert "daemon: running (pid 11 on box1)" in table
    assert "nodes:" in table and "beta" in table and "fast, 2 worker(s)" in table
    assert "NODE" in table
    listed = json.loads(runner.invoke(cli, ["--config", str(cfg), "nodes", "--json"]).output)
    assert [(n["node"], n["alive"], n["host"]) for n in listed] == [
        ("alpha", True, "box1"),
        ("beta", True, "box2"),
    ]
    jobs = json.loads(runner.invoke(cli, ["--config", str(cfg), "status", "--json"]).output)
    assert [(j["id"], j["node"]) for j in jobs] == [(job_id, "beta")]
    laptop = cfg.read_text().replace('node = "alpha"', 'node = "laptop"')
    cfg.write_text(laptop)  # an admin's machine, no daemon of its own
    table = runner.invoke(cli, ["--config", str(cfg), "status"]).output
    assert "daemon: none on this node (laptop); 2 other node(s)" in table and "beta" in table
    store.engine.dispose()


def test_commands_other_than_run_never_migrate_a_shared_database(
    pg_url: str, tmp_path: Path
) -> None:
    """``status`` from another (say newer) version must not change the fleet's schema."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{pg_url}"\n[watch]\nfolders = ["{tmp_path}"]\n')
    res = CliRunner().invoke(cli, ["--config", str(cfg), "status"])
    assert res.exit_code == 1 and "run 'transcribd db upgrade'" in res.output, res.output
    engine = make_engine(pg_url)
    assert "jobs" not in inspect(engine).get_table_names()
    assert CliRunner().invoke(cli, ["--config", str(cfg), "db", "upgrade"]).exit_code == 0
    assert CliRunner().invoke(cli, ["--config", str(cfg), "status"]).exit_code == 0
    engine.dispose()


def test_a_node_not_heard_from_is_shown_as_not_running(config: Config) -> None:
    now = utcnow()
    beats = {
        "a": ({"host": "h", "pid": 1}, now - timedelta(seconds=2)),
        "b": ({"host": "h2", "pid": 2, "missing_folders": ["/x"]}, now - timedelta(minutes=10)),
    }
    plans = {"b": ({"profile": "fast"}, now - timedelta(minutes=10))}
    views = node_views(beats, plans, now, config)
    assert [(v.node, v.alive) for v in views] == [("a", True), ("b", False)]
    assert views[1].missing_folders == [] and views[1].plan == {"profile": "fast"}


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own (it is stopped and started again)."""
    server = start_postgres(own=True)
    yield server
    server.stop()


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_a_daemon_outlives_its_database_going_away(
    own_server: PostgresServer, tmp_path: Path, model_cache: Path
) -> None:
    """The server stops under a running daemon: the daemon says so once (no traceback per
    tick), keeps running, and once the server is back it takes new files as before."""
    url = own_server.database()
    inbox = tmp_path / "inbox"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[watch]\nfolders = ["{inbox}"]\nstable_seconds = 0.2\n'
        f'[output]\ndir = "{tmp_path / "out"}"\nformats = ["txt"]\n'
        f'[diarization]\nenabled = false\n[models]\ncache_dir = "{model_cache}"\n'
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.3\nnode = "solo"\n'
    )
    config = config_mod.load(cfg)
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(cfg), "run"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None and "watching" in proc.stdout.readline()
        own_server.pg_ctl("stop")
        write_wav(inbox / "during.wav", 1.0, amplitude=0.0)  # noticed while the server is down
        time.sleep(4)
        assert proc.poll() is None, log.read_text()[-3000:]
        down = CliRunner().invoke(cli, ["--config", str(cfg), "status"])
        assert down.exit_code == 1 and "cannot reach the database" in down.output
        own_server.pg_ctl("start")
        write_wav(inbox / "after.wav", 1.0, amplitude=0.0)
        store = open_store(config)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            jobs = store.jobs()
            if len(jobs) == 2 and all(j.status is JobStatus.DONE for j in jobs):
                break
            time.sleep(0.3)
        assert sorted((Path(j.path).name, j.status) for j in store.jobs()) == [
            ("after.wav", JobStatus.DONE),
            ("during.wav", JobStatus.DONE),
        ], log.read_text()[-3000:]
        assert proc.poll() is None
        store.engine.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        assert proc.stdout is not None
        proc.stdout.close()
    text = log.read_text()
    assert text.count("the database is unreachable") == 1, text[-3000:]
    assert "the database is reachable again" in text
    assert "Traceback" not in text, text[-3000:]


def test_a_node_name_in_use_on_another_machine_is_refused(
    make_config: Callable[..., Config],
) -> None:
    from daemon.app.running import claim_node
    from daemon.errors import UserError

    config = make_config(daemon={"node": "box"})
    store = open_store(config)
    store.results.set_state("daemon", {"host": "other-machine", "pid": 7}, utcnow())
    with pytest.raises(UserError, match="node 'box' is in use by a running daemon on other"):
        claim_node(config, store)
    store.results.set_state(
        "daemon", {"host": "other-machine", "pid": 7}, utcnow() - timedelta(hours=1)
    )
    assert claim_node(config, store) == "box"  # that daemon is gone: the name is free again
