"""Graceful stop and the systemd notify protocol.

:class:`StopSignals` turns the first SIGTERM/SIGINT/SIGQUIT into "stop gracefully" and a second
one into "stop now", and SIGHUP into "reload"; they are events the main loop and the pool read.
:class:`Notifier` speaks sd_notify(3): ``READY=1``, ``STATUS=...``, ``STOPPING=1`` and
``WATCHDOG=1`` datagrams to ``$NOTIFY_SOCKET``, a no-op outside systemd.  The protocol is one
datagram per message on a Unix socket; it is written here rather than taken from ``sdnotify``
(unmaintained) or ``systemd-python`` (needs libsystemd headers to build).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class StopSignals:
    """Installs handlers for the signals a service gets, for its ``with`` block, and restores
    the old ones: SIGTERM, SIGINT and SIGQUIT stop gracefully (a second one: at once), SIGHUP
    asks for a reload, SIGUSR1/SIGUSR2 are logged and ignored.  None of them kills the daemon
    without its graceful stop."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    IGNORED = (signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self) -> None:
        self.graceful = threading.Event()
        """Set by the first signal: stop intake, let running jobs checkpoint, exit 0."""
        self.urgent = threading.Event()
        """Set by a second signal: kill workers now (their leases are released), exit 0."""
        self.reload = threading.Event()
        """Set by SIGHUP: re-read the config (the main loop clears it)."""
        self._previous: dict[int, Any] = {}

    def _hangup(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: reloading the config", signum, extra={"signal": signum})
        self.reload.set()

    def _ignore(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s ignored", signum, extra={"signal": signum})

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.graceful.is_set():
            log.warning("second signal %s: stopping now", signum, extra={"signal": signum})
            self.urgent.set()
        else:
            log.info("signal %s: stopping gracefully", signum, extra={"signal": signum})
            self.graceful.set()

    def __enter__(self) -> StopSignals:
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._hangup)
        self._previous |= {s: signal.signal(s, self._ignore) for s in self.IGNORED}
        return self

    def __exit__(self, *_exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class Notifier:
    """sd_notify(3) to ``$NOTIFY_SOCKET``; silent when the daemon does not run under systemd."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_seconds: float | None = int(usec) / 1e6 if watchdog else None
        """systemd's WatchdogSec, when it expects pings from this process."""
        self._sock: socket.socket | None = None
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode("utf-8", "replace"), self.address)
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc, extra={"socket": self.address})
            return False
        return True

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self._last_status = status
        self.send(f"STOPPING=1\nSTATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
