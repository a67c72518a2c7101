"""The CLI through click's CliRunner, on a real SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from daemon.cli import cli
from daemon.config import Config
from tests.conftest import write_wav


@pytest.fixture
def invoke(config_file: Path) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config_file), *args])

    return run


def test_status_empty(invoke: Callable[..., Result]) -> None:
    assert invoke("db", "upgrade").exit_code == 0  # status never creates the database
    res = invoke("status")
    assert res.exit_code == 0 and "no jobs yet" in res.output
    res = invoke("status", "--json")
    assert res.exit_code == 0 and json.loads(res.output) == []


def test_add_then_status_json(invoke: Callable[..., Result], tmp_path: Path) -> None:
    a = write_wav(tmp_path / "a.wav", 0.5)
    b = tmp_path / "b.wav"
    b.write_bytes(a.read_bytes())
    res = invoke("add", str(a), str(b), "--profile", "fast")
    assert res.exit_code == 0, res.output
    assert "#1 queued" in res.output and "#2 queued" in res.output
    assert "duplicate of #1" in res.output
    assert "#1 already known" in invoke("add", str(a)).output
    jobs = json.loads(invoke("status", "--json").output)
    assert [j["id"] for j in jobs] == [1, 2]
    for key in ("id", "path", "status", "progress", "error", "outputs"):
        assert key in jobs[0]
    assert jobs[0]["status"] == "queued" and jobs[0]["options"] == {"profile": "fast"}
    # measured as it was added: half a second of a tone, no speech
    assert jobs[0]["facts"]["duration"] == pytest.approx(0.5, abs=0.01)
    assert jobs[0]["facts"]["speech_share"] == 0.0
    table = invoke("status").output
    assert "duplicate of #1" in table and "a.wav" in table


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[watch]\nfolderz = ["/x"]\n')
    res = CliRunner().invoke(cli, ["--config", str(bad), "status"])
    assert res.exit_code == 2
    assert res.output.strip() == "transcribd: config: unknown config key 'watch.folderz'"


def test_missing_config_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "status"])
    assert res.exit_code == 2 and "config file not found" in res.output


def test_usage_errors_exit_2(invoke: Callable[..., Result]) -> None:
    assert invoke("requeue").exit_code == 2
    assert invoke("status", "notanumber").exit_code == 2
    assert invoke("frobnicate").exit_code == 2


def test_unknown_job_exits_1(invoke: Callable[..., Result]) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    res = invoke("status", "42")
    assert res.exit_code == 1 and res.output.strip() == "transcribd: no job #42"


def test_requeue_reports_what_it_did(invoke: Callable[..., Result], tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", 0.3)
    invoke("add", str(tmp_path / "a.wav"))
    res = invoke("requeue", "1")
    assert res.exit_code == 1 and "skipped #1: job is queued" in res.output


def test_bad_input_fails_job_with_clear_error_and_requeue_failed(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    fake = tmp_path / "inbox" / "notes.mp3"
    fake.parent.mkdir(parents=True)
    fake.write_text("this is not audio\n" * 100)
    res = invoke("run", "--once")
    assert res.exit_code == 0, res.output
    assert "1 failed" in res.output
    [job] = json.loads(invoke("status", "--json").output)
    assert job["status"] == "failed"
    assert job["error"].startswith("not decodable audio")
    assert "Traceback" not in res.output
    res = invoke("requeue", "--failed")
    assert res.exit_code == 0 and "requeued #1" in res.output
    assert json.loads(invoke("status", "--json").output)[0]["status"] == "queued"


def test_db_upgrade(invoke: Callable[..., Result]) -> None:
    from alembic.script import ScriptDirectory

    from daemon import db

    head = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_current_head()
    res = invoke("db", "upgrade")
    assert res.exit_code == 0 and f"database at revision {head}" in res.output, res.output
    assert head is not None and head >= "0007"


def test_transcribe_missing_file_exits_1(invoke: Callable[..., Result], tmp_path: Path) -> None:
    res = invoke("transcribe", str(tmp_path / "nope.wav"))
    assert res.exit_code == 1 and res.output.startswith("transcribd: not a file")


def test_python_dash_m_is_the_same_cli(config: Config) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "daemon", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("run", "status", "add", "requeue", "transcribe", "db"):
        assert command in out.stdout


def test_status_says_whether_a_daemon_uses_the_database(config: Config) -> None:
    from datetime import timedelta

    from daemon.nodes import daemon_line, node_views

    now = datetime(2026, 1, 1, 12)
    node = config.daemon.node

    def line(beat: tuple[dict[str, object], datetime] | None) -> str:
        return daemon_line(node_views({node: beat} if beat else {}, {}, now, config), config)

    beat = ({"pid": 41, "host": "box"}, now - timedelta(seconds=3))
    assert line(beat) == "daemon: running (pid 41 on box)"
    old = ({"pid": 41, "host": "box"}, now - timedelta(minutes=5))
    assert line(old).startswith("daemon: not running on this database")
    assert line(None).startswith("daemon: none has used this database")


def test_config_command_shows_values_and_where_they_came_from(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[watch]\nfolders = ["{tmp_path / "in"}"]\n[output]\nmax_lines = 1\n')
    res = CliRunner().invoke(cli, ["--config", str(cfg), "config"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"# config: {cfg} (--config)"
    assert "[output]" in lines and "max_lines = 1  # file" in lines
    assert "max_line_chars = 42  # default" in lines
    assert f'folders = ["{tmp_path / "in"}"]  # file' in lines


def test_status_shows_the_device_of_a_running_job(
    invoke: Callable[..., Result], config: Config, tmp_path: Path
) -> None:
    from daemon.store import open_store

    write_wav(tmp_path / "a.wav", 0.3)
    write_wav(tmp_path / "b.wav", 0.4)
    assert invoke("add", str(tmp_path / "a.wav"), "--device", "cuda:1").exit_code == 0
    assert invoke("add", str(tmp_path / "b.wav")).exit_code == 0
    store = open_store(config)
    try:  # what the scheduler does when a GPU worker on cuda:1 takes job 1
        [_claimed] = store.claim("w0", 1, store.now(), 60.0, job_id=1, device="cuda:1")
    finally:
        store.close()
    rows = {ln.split()[0]: ln for ln in invoke("status").output.splitlines()[1:]}
    assert "running on cuda:1" in rows["1"]
    assert "queued" in rows["2"] and " on " not in rows["2"]
    jobs = {j["id"]: j for j in json.loads(invoke("status", "--json").output)}
    assert jobs[1]["device"] == "cuda:1" and jobs[1]["options"] == {"device": "cuda:1"}
    assert jobs[2]["device"] is None
