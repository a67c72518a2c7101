"""Nodes that tell the truth, with real daemons: two ``transcribd run`` on one host and one
database, on the same config (the default node name), are two nodes in ``nodes`` and
``status``; a daemon that stops cleanly is shown as stopped at once; a restarted one takes
its name again."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.running import Daemon

HOST = socket.gethostname()


def config_text(tmp_path: Path, model_cache: Path) -> str:
    """No ``[daemon] node``: each daemon's name is the default."""
    return (
        f'[database]\nurl = "sqlite:///{tmp_path / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\n'
        f'[output]\ndir = "{tmp_path / "out"}"\n'
        '[pipeline]\nprofile = "fast"\n'
        f'[models]\ncache_dir = "{model_cache}"\n'
        "[diarization]\nenabled = false\n"
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.5\n'
    )


def listed(d: Daemon) -> dict[str, dict[str, Any]]:
    out = subprocess.run([*d.cmd, "nodes", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return {n["node"]: n for n in json.loads(out.stdout)}


def seen(nodes: dict[str, dict[str, Any]]) -> dict[str, tuple[bool, int, str]]:
    return {name: (n["alive"], n["pid"], n["host"]) for name, n in nodes.items()}


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_two_daemons_on_one_host_are_two_nodes_and_a_clean_stop_shows_at_once(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache))
    daemons.append(first := Daemon(cfg, "first"))
    daemons.append(second := Daemon(cfg, "second"))
    first_pid, second_pid = first.proc.pid, second.proc.pid
    assert seen(listed(first)) == {
        HOST: (True, first_pid, HOST),
        f"{HOST}-2": (True, second_pid, HOST),
    }
    table = first.status()
    assert "nodes:" in table and f"{HOST}-2" in table, table
    assert f"running (pid {first_pid} on {HOST})" in table.splitlines()[0], table

    assert second.stop() == 0
    nodes = listed(first)  # at once: not after 30 s without a heartbeat
    assert seen(nodes) == {HOST: (True, first_pid, HOST), f"{HOST}-2": (False, second_pid, HOST)}
    assert nodes[f"{HOST}-2"]["stopped"] is True

    daemons.append(again := Daemon(cfg, "again"))  # the second, restarted: its name again
    assert seen(listed(first)) == {
        HOST: (True, first_pid, HOST),
        f"{HOST}-2": (True, again.proc.pid, HOST),
    }
    assert first.stop() == 0
    assert seen(listed(again))[HOST] == (False, first_pid, HOST)
    line = again.status().splitlines()[0]  # this host's daemon is the one still running
    assert line == f"daemon: running (pid {again.proc.pid} on {HOST})", line
    assert again.stop() == 0
    logs = first.log() + second.log() + again.log()
    assert f"this one runs as '{HOST}-2'" in second.log(), second.log()[-2000:]
    assert "Traceback" not in logs, logs[-3000:]
