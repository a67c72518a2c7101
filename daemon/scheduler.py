"""APScheduler glue: every tick, intake -> lease recovery -> claim -> dispatch to a worker.

:meth:`Scheduler.tick` is one iteration with the time passed in, so tests drive it without
sleeping; :meth:`Scheduler.run_once` is burst mode (drain the queue, then return).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daemon.config import Config
from daemon.intake import Intake
from daemon.models import JobStatus
from daemon.store import JobRecord, Store, utcnow
from daemon.workers import Executor

log = logging.getLogger(__name__)


@dataclass
class Summary:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        config: Config,
        store: Store,
        intake: Intake,
        executor: Executor,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.store = store
        self.intake = intake
        self.executor = executor
        self.clock = clock
        self._worker: threading.Thread | None = None
        self._aps: Any = None

    # ------------------------------------------------------------------ one iteration
    def tick(self, now: datetime | None = None) -> list[JobRecord]:
        """Intake, lease recovery, then claim and dispatch if the worker is free."""
        now = now or self.clock()
        try:
            self.intake.poll(now)
            self.store.recover_expired(now)
            if self._worker is not None and self._worker.is_alive():
                return []
            jobs = self.store.claim(self.executor.owner, 1, now, self.config.daemon.lease_seconds)
            for job in jobs:
                self._worker = threading.Thread(
                    target=self.executor.execute, args=(job,), name=f"job-{job.id}", daemon=True
                )
                self._worker.start()
            return jobs
        except Exception:  # the loop logs and keeps going
            log.exception("scheduler tick failed")
            return []

    # ------------------------------------------------------------------ burst mode
    def run_once(self, poll_seconds: float = 0.2) -> Summary:
        """Rescan, process everything pending (including files still settling), then return."""
        summary = Summary()
        self.intake.rescan(self.clock())
        while True:
            now = self.clock()
            self.intake.poll(now)
            self.store.recover_expired(now)
            jobs = self.store.claim(self.executor.owner, 1, now, self.config.daemon.lease_seconds)
            if jobs:
                for job in jobs:
                    ok = self.executor.execute(job)
                    (summary.done if ok else summary.failed).append(job.id)
                continue
            wait = self._next_wait(now)
            if wait is None:
                break
            time.sleep(min(max(wait, 0.05), poll_seconds * 10))
        summary.failed = [
            j
            for j in summary.failed
            if (rec := self.store.get(j)) is not None and rec.status is JobStatus.FAILED
        ]
        return summary

    def _next_wait(self, now: datetime) -> float | None:
        """Seconds until something may become ready; None when nothing is left to wait for."""
        if self.intake.pending:
            return 0.2
        queued = self.store.jobs([JobStatus.QUEUED])
        times = [j.run_after for j in queued if j.run_after is not None and j.run_after > now]
        if times:
            return (min(times) - now).total_seconds()
        return None

    # ------------------------------------------------------------------ daemon mode
    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        aps = BackgroundScheduler(timezone="UTC")
        aps.add_job(
            self.tick,
            "interval",
            seconds=self.config.daemon.tick_seconds,
            max_instances=1,
            coalesce=True,
            next_run_time=self.clock(),
            id="tick",
        )
        aps.start()
        self._aps = aps

    def stop(self, timeout: float) -> bool:
        """Stop ticking and wait up to ``timeout`` for the running job; True if it finished."""
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        if self._worker is not None:
            self._worker.join(timeout)
            return not self._worker.is_alive()
        return True
