from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from daemon.signals import Notifier, StopSignals


def test_notifier_speaks_sd_notify_on_a_real_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000"})
        assert n.enabled and n.watchdog_seconds == 20.0
        n.ready("0 queued")
        n.status("0 queued")  # unchanged: not sent again
        n.status("1 queued")
        n.watchdog()
        n.stopping("stopping")
        got = [server.recv(4096).decode() for _ in range(4)]
        n.close()
    finally:
        server.close()
    assert got == [
        "READY=1\nSTATUS=0 queued",
        "STATUS=1 queued",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_notifier_is_silent_outside_systemd() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_seconds is None
    assert n.send("READY=1") is False


def test_watchdog_meant_for_another_pid_is_ignored() -> None:
    n = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert n.watchdog_seconds is None or os.getpid() == 1


def test_first_signal_is_graceful_second_is_urgent() -> None:
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.graceful.is_set() and not stop.urgent.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.urgent.is_set()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_hangup_asks_for_a_reload_and_user_signals_are_ignored() -> None:
    before = signal.getsignal(signal.SIGHUP)  # SIG_IGN under nohup
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        assert stop.reload.is_set() and not stop.graceful.is_set()
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR2)
        assert not stop.graceful.is_set()
        os.kill(os.getpid(), signal.SIGQUIT)
        assert stop.graceful.is_set() and not stop.urgent.is_set()
    assert signal.getsignal(signal.SIGHUP) is before  # given back as it was
