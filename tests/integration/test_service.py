"""The daemon under a service manager: sd_notify on a real socket, and the unit file itself."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, write_config


def test_notify_ready_status_watchdog_and_stopping(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(tmp_path, model_cache)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(120)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "3000000"}
    messages: list[str] = []
    with (tmp_path / "daemon.log").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(cfg), "run"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            started = time.monotonic()
            messages.append(sock.recv(4096).decode())
            assert messages[0].startswith("READY=1\nSTATUS="), messages
            assert "0 queued" in messages[0]
            sock.settimeout(5)
            messages.append(sock.recv(4096).decode())
            assert messages[-1] == "WATCHDOG=1"  # pinged within WatchdogSec / 3
            assert time.monotonic() - started < 60
            proc.send_signal(signal.SIGTERM)
            while not messages[-1].startswith("STOPPING=1"):
                messages.append(sock.recv(4096).decode())
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sock.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()[-2000:]


def test_unit_file_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    exe = shutil.which("transcribd") or str(Path(sys.executable).with_name("transcribd"))
    if not Path(exe).exists():
        pytest.skip("the transcribd script is not installed (pip install -e .)")
    unit = (REPO / "systemd" / "transcribd.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "KillMode=mixed" in unit
    for key in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_UNIX",
    ):
        assert key in unit, key
    local = tmp_path / "transcribd.service"
    local.write_text(unit.replace("/opt/transcribd/bin/transcribd", exe))
    res = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    problems = [line for line in res.stderr.splitlines() if "transcribd.service" in line]
    assert res.returncode == 0 and not problems, res.stderr


def test_stop_seconds_fit_the_unit_timeout() -> None:
    from daemon.config import DaemonConfig

    unit = (REPO / "systemd" / "transcribd.service").read_text()
    timeout = next(
        float(line.split("=", 1)[1])
        for line in unit.splitlines()
        if line.startswith("TimeoutStopSec=")
    )
    assert DaemonConfig().stop_seconds + 15 <= timeout
