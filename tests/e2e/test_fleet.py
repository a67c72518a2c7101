"""A fleet: three daemons (nodes) on one real PostgreSQL database and one watched folder."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import psutil
import pytest

from daemon import config as config_mod
from daemon.jobs import JobStatus
from daemon.store import Store, open_store
from tests.conftest import lj_clips, speech_file
from tests.e2e.test_resilience import wait_for

pytestmark = [pytest.mark.model, pytest.mark.eval]

NODES = ("alpha", "beta", "gamma")
LEASE = 12.0


def node_config(root: Path, node: str, url: str, inbox: Path, out: Path, cache: Path) -> Path:
    """One node's config: the shared database, inbox and output folder; its own work folder."""
    f = root / node / "config.toml"
    f.parent.mkdir(parents=True)
    f.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[watch]\nfolders = ["{inbox}"]\nstable_seconds = 0.5\n'
        f'[output]\ndir = "{out}"\nformats = ["txt", "json"]\n'
        '[pipeline]\nprofile = "balanced"\n[profiles.balanced]\nmax_chunk_seconds = 10.0\n'
        "[diarization]\nenabled = false\n"
        f'[models]\ncache_dir = "{cache}"\n'
        f'[daemon]\nnode = "{node}"\nwork_dir = "{root / node / "work"}"\n'
        f"tick_seconds = 0.5\nlease_seconds = {LEASE}\nmax_workers = 1\n"
    )
    return f


@contextmanager
def daemon(cfg: Path, log: Path) -> Iterator[subprocess.Popen[str]]:
    with log.open("a") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(cfg), "run"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        assert proc.stdout is not None
        try:
            assert "watching" in proc.stdout.readline(), log.read_text()[-3000:]
            yield proc
        finally:
            for child in _children(proc.pid):
                with suppress(psutil.NoSuchProcess):
                    child.kill()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def power_cut(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a node's daemon and its workers at once, as a power cut would."""
    victims = [*_children(proc.pid), psutil.Process(proc.pid)]
    for p in victims:
        p.kill()
    psutil.wait_procs(victims, timeout=10)


@pytest.mark.slow
def test_three_nodes_share_the_work_and_a_dead_nodes_job_comes_back(
    tmp_path: Path, model_cache: Path, pg_url: str
) -> None:
    clips = lj_clips()
    inbox, out = tmp_path / "shared" / "inbox", tmp_path / "shared" / "out"
    src = tmp_path / "src"
    long = speech_file(src / "lecture.wav", clips[:9])  # about a minute: several chunks
    files = [long] + [speech_file(src / f"clip{i:02d}.wav", [c]) for i, c in enumerate(clips[9:])]
    files += [speech_file(src / f"pair{i}.wav", clips[i : i + 2]) for i in range(12 - len(files))]
    assert len(files) == 12
    cfgs = {n: node_config(tmp_path, n, pg_url, inbox, out, model_cache) for n in NODES}
    store: Store = open_store(config_mod.load(cfgs["alpha"]), migrate=True)
    inbox.mkdir(parents=True)
    with ExitStack() as stack:
        procs = {n: stack.enter_context(daemon(cfgs[n], tmp_path / f"{n}.log")) for n in NODES}
        for f in files:  # dropped at once: every node sees every file
            (inbox / f.name).write_bytes(f.read_bytes())
        jobs = wait_for(
            store,
            lambda js: any(
                Path(j.path).name == "lecture.wav"
                and j.status is JobStatus.RUNNING
                and 0.2 <= j.progress < 0.8
                for j in js
            ),
            300,
            "the long file to be under way",
        )
        victim = next(j for j in jobs if Path(j.path).name == "lecture.wav")
        assert victim.node in NODES
        power_cut(procs[victim.node])
        jobs = wait_for(
            store,
            lambda js: len(js) == 12 and all(j.status is JobStatus.DONE for j in js),
            600,
            "every file to be done",
        )
        listing = subprocess.run(
            [sys.executable, "-m", "daemon", "--config", str(cfgs["beta"]), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    store.engine.dispose()
    logs = "\n".join((tmp_path / f"{n}.log").read_text()[-2000:] for n in NODES)
    by_name = {Path(j.path).name: j for j in jobs}
    assert sorted(by_name) == sorted(f.name for f in files), logs  # each file once
    lecture = by_name["lecture.wav"]
    assert lecture.node != victim.node and lecture.attempts == 2, (lecture, logs)
    assert lecture.metrics["steps"]["cached"].get("asr", 0) >= 1, lecture.metrics["steps"]
    assert len({j.node for j in jobs}) >= 2, [j.node for j in jobs]  # the work was shared
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(Path(p).name for j in jobs for p in j.outputs), written
    assert len(written) == 2 * 12  # one set each: no "-1" copies, no temp files
    rows = json.loads(listing.stdout)
    assert {r["node"] for r in rows} <= set(NODES) and len(rows) == 12, listing.stderr
