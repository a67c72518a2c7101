"""APScheduler glue: every tick, intake -> lease recovery -> plan -> claim -> dispatch.

:meth:`Scheduler.tick` is one iteration with the time passed in; :meth:`Scheduler.run_once` is
burst mode (drain the queue, then return).  Jobs run in warm worker processes
(:class:`daemon.pool.WorkerPool`); the planner (:func:`daemon.profiles.choose`) decides, from a
load snapshot, the queue and the next file, the profile, how many workers and how many threads
each.  The plan in force and its reason are published for ``transcribd status``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from daemon.config import Config
from daemon.intake import Intake
from daemon.models import JobStatus
from daemon.pool import WorkerPool
from daemon.profiles import FileFacts, Plan, PlannerSettings, QueueFacts, choose
from daemon.store import JobRecord, Store, utcnow
from daemon.sysload import LoadSampler

log = logging.getLogger(__name__)

PLAN_KEY = "plan"


@dataclass
class Summary:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def planner_settings(config: Config) -> PlannerSettings:
    return PlannerSettings(profile=config.pipeline.profile, max_workers=config.daemon.max_workers)


def _facts(job: JobRecord) -> FileFacts:
    """What the planner knows of a queued file; an unknown length is estimated from its size
    at 16 kB/s, as ``Store.queue_facts`` does."""
    return FileFacts(duration=job.duration or job.size / 16000.0)


class Scheduler:
    def __init__(
        self,
        config: Config,
        store: Store,
        intake: Intake,
        pool: WorkerPool,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.store = store
        self.intake = intake
        self.pool = pool
        self.clock = clock
        self.sampler = LoadSampler()
        self.settings = planner_settings(config)
        self.plan: Plan | None = None
        self.summary = Summary()
        self._aps: Any = None

    # ------------------------------------------------------------------ one iteration
    def tick(self, now: datetime | None = None) -> int:
        """Intake, lease recovery, reports, then plan and dispatch; returns jobs dispatched."""
        now = now or self.clock()
        try:
            self.intake.poll(now)
            self.store.recover_expired(now)
            self._collect()
            return self._dispatch(now)
        except Exception:  # the loop logs and keeps going
            log.exception("scheduler tick failed")
            return 0

    def _collect(self, timeout: float = 0.0) -> None:
        for report in self.pool.collect(timeout):
            (self.summary.done if report.ok else self.summary.failed).append(report.job_id)

    def _dispatch(self, now: datetime) -> int:
        nxt = self.store.next_ready(now)
        if nxt is None:
            return 0
        queued, seconds, running = self.store.queue_facts(now)
        snapshot = self.sampler.snapshot(now)
        facts = _facts(nxt)
        plan = choose(
            snapshot,
            QueueFacts(queued, seconds, running),
            facts,
            self.settings,
            now,
            requested=self._requested(nxt),
        )
        if plan != self.plan:
            log.info(
                "plan: %s, %d worker(s) x %d thread(s) (%s)",
                plan.profile,
                plan.workers,
                plan.threads,
                plan.reason,
                extra=asdict(plan),
            )
            self.store.set_state(PLAN_KEY, asdict(plan), now)
            self.plan = plan
        self.pool.resize(plan.workers, plan.threads)
        dispatched = 0
        for index in self.pool.idle_slots():
            profile = plan.profile
            if dispatched:  # later jobs of this tick: their own file and request
                nxt = self.store.next_ready(now)
                if nxt is None:
                    break
                profile = choose(
                    snapshot,
                    QueueFacts(queued - dispatched, seconds, running),
                    _facts(nxt),
                    self.settings,
                    now,
                    self._requested(nxt),
                ).profile
            jobs = self.store.claim(
                self.pool.owner(index), 1, now, self.config.daemon.lease_seconds, profile=profile
            )
            if not jobs:
                break
            self.pool.submit(jobs[0], index, workers=plan.workers)
            dispatched += 1
        return dispatched

    def _requested(self, job: JobRecord) -> str | None:
        """A profile the job asks for, or one that lets it reuse finished work: a requeued
        job keeps the profile it ran with, a duplicate takes its original's."""
        if job.options.get("profile"):
            return str(job.options["profile"])
        if job.duplicate_of is not None:
            original = self.store.get(job.duplicate_of)
            if original is not None and original.profile:
                return original.profile
        return job.profile

    # ------------------------------------------------------------------ burst mode
    def run_once(self, poll_seconds: float = 0.2) -> Summary:
        """Rescan, process everything pending (including files still settling), then return."""
        self.summary = Summary()
        self.intake.rescan(self.clock())
        while True:
            now = self.clock()
            self.tick(now)
            if self.pool.busy:
                self._collect(timeout=poll_seconds)
                continue
            if self.store.next_ready(now) is not None:
                continue
            wait = self._next_wait(now)
            if wait is None:
                break
            time.sleep(min(max(wait, 0.05), poll_seconds * 10))
        # a job that failed, then succeeded on a retry, counts once, as done
        self.summary.failed = [
            j
            for j in dict.fromkeys(self.summary.failed)
            if (rec := self.store.get(j)) is not None and rec.status is JobStatus.FAILED
        ]
        return self.summary

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
        """Stop ticking and let workers finish their jobs within ``timeout``."""
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        return self.pool.stop(timeout)
