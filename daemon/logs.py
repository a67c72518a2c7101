"""Logging setup: one line per record, structured ``extra`` fields appended as key=value."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not extras:
            return base
        return base + " " + " ".join(f"{k}={v!r}" for k, v in sorted(extras.items()))


def setup(level: str = "INFO", follow: Any = None) -> None:
    """One handler on stderr at ``level``.  ``follow``: a shared level a parent process sets
    (see :func:`follow_level`), taken up while this process runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "faster_whisper", "watchdog", "alembic", "numba", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # a tick that outlasts the interval makes APScheduler skip the next one (max_instances=1,
    # coalesced: what the daemon wants), and warn each time; its errors still show
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    if follow is not None:
        follow_level(follow)


def set_level(level: str) -> None:
    """Change the level of the running process (a reloaded config)."""
    logging.getLogger().setLevel(level.upper())


def level_number(level: str) -> int:
    """A level's number ("DEBUG" -> 10; "" -> INFO, the daemon's default)."""
    return logging.getLevelNamesMapping()[(level or "INFO").upper()]


def follow_level(shared: Any, every: float = 0.5) -> threading.Thread:
    """Keep this process's level at ``shared.value`` whenever that changes (a level number a
    parent process sets; 0: none set): how a worker process takes up a reloaded
    ``daemon.log_level``, even in the middle of a job."""

    def follow() -> None:
        applied = 0
        while True:
            wanted = int(shared.value)
            if wanted and wanted != applied:
                logging.getLogger().setLevel(wanted)
                applied = wanted
            time.sleep(every)

    thread = threading.Thread(target=follow, name="log-level", daemon=True)
    thread.start()
    return thread
