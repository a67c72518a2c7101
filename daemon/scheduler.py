"""APScheduler glue: every tick, intake -> lease recovery -> plan -> claim -> dispatch.

:meth:`Scheduler.tick` is one iteration with the time passed in; :meth:`Scheduler.run_once` is
burst mode (drain the queue, then return).  Jobs run in warm worker processes
(:class:`daemon.pool.WorkerPool`); the planner (:func:`daemon.planner.choose`) decides, from a
load snapshot, the queue and the next file, the profile, how many workers and how many threads
each.  The plan in force and its reason are published for ``transcribd status``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import db, devices, nodes, retry
from daemon.config import Config
from daemon.errors import WorkerDied
from daemon.executor import settle
from daemon.intake import Intake
from daemon.jobs import JobRecord, JobStatus, Lease
from daemon.nodes import DAEMON_KEY, HEARTBEAT_SECONDS, HOST, PLAN_KEY, node_clash
from daemon.planner import (
    FileFacts,
    Plan,
    PlannerSettings,
    QueueFacts,
    Waiting,
    assign,
    choose,
    requested_profile,
)
from daemon.pool import WorkerPool, owner_gone
from daemon.profiles import resolve as resolve_profile
from daemon.publish import output_place
from daemon.store import Store, estimated_duration, utcnow
from daemon.sysload import LoadSampler, pid_alive
from daemon.workers import Report

if TYPE_CHECKING:
    from daemon.delivery import Deliverer
    from daemon.metrics import Metrics

log = logging.getLogger(__name__)

READY_LOOKED_AT = 64
"""Ready jobs the dispatcher chooses among per tick (the first in line, and for a GPU the
longest as well; jobs this node can never run are not counted)."""


@dataclass
class Summary:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def planner_settings(config: Config) -> PlannerSettings:
    quality, balanced = (resolve_profile(n, config.profiles) for n in ("quality", "balanced"))
    return PlannerSettings(
        profile=config.pipeline.profile,
        max_workers=config.daemon.max_workers,
        quality_pays=quality.model != balanced.model,
    )


def _facts(job: JobRecord) -> FileFacts:
    """What the planner knows of a queued file."""
    f = job.facts
    if f is None:
        return FileFacts(duration=estimated_duration(job))
    return FileFacts(estimated_duration(job), f.speech_share, f.snr_db)


class Scheduler:
    def __init__(
        self,
        config: Config,
        store: Store,
        intake: Intake,
        pool: WorkerPool,
        clock: Callable[[], datetime] | None = None,
        device: devices.Device = devices.CPU,
    ) -> None:
        self.config = config
        self.store = store
        self.intake = intake
        self.pool = pool
        self.device = device
        """Where models may run (:func:`daemon.devices.select`): its GPUs get a worker each."""
        self.clock: Callable[[], datetime] = clock or store.now
        """Leases and backoffs are reckoned in the store's time (the database server's, when
        several nodes share it); the intake's settling in this machine's own."""
        self.sampler = LoadSampler(devices.gpu_loads if device.usable else tuple)
        self._stranded: set[int] = set()
        self.settings = planner_settings(config)
        self.plan: Plan | None = None
        self.summary = Summary()
        self._aps: Any = None
        self._last_tick = time.monotonic()
        self._tick_lock = threading.Lock()
        self._published: tuple[dict[str, Any], datetime] | None = None
        self.unreachable: str | None = None
        """Why the database cannot be reached (None while it can); ticks go on meanwhile."""
        self.clash: str | None = None
        """Set when another machine's daemon uses this node's name: this one must stop."""
        self.metrics: Metrics | None = None
        """Told of each report and worker death when ``[metrics] listen`` is set."""
        self.deliverer: Deliverer | None = None
        """Delivers the announcements of jobs' ends when ``[hooks]`` asks for any."""

    # ------------------------------------------------------------------ one iteration
    def tick(self, now: datetime | None = None) -> int:
        """Intake, lease recovery, reports, then plan and dispatch; returns jobs dispatched."""
        with self._tick_lock:  # APScheduler's ticks and the report pump's
            return self._tick(now)

    def _tick(self, now: datetime | None) -> int:
        try:
            self.intake.poll(utcnow())  # hashing new files may take a while: time after it
            now = now or self.clock()
            self._publish(now)
            self.store.recover_expired(now, self.config.daemon.max_attempts)
            self._recover_abandoned(now)
            self._collect()
            dispatched = self._dispatch(now)
        except Exception as exc:  # the loop logs and keeps going
            if db.unreachable(exc):
                self._lost_database(exc)
            else:
                log.exception("scheduler tick failed")
            return 0
        finally:
            self._last_tick = time.monotonic()
            # after dispatch (a worker given a job now is not idle), and in an outage too
            self.pool.retire_idle(self.config.daemon.model_idle_seconds)
        if self.unreachable is not None:
            log.warning("the database is reachable again", extra={"database": self._where()})
            self.unreachable = None
        return dispatched

    def _lost_database(self, exc: BaseException) -> None:
        """Say once per outage that the database cannot be reached (not a traceback a tick)."""
        first = self.unreachable is None
        reason = db.reason(exc)
        self.unreachable = f"database unreachable since {utcnow():%H:%M:%S} UTC: {reason}"
        if first:
            log.error(
                "the database is unreachable (%s); retrying every tick, running jobs go on",
                reason,
                extra={"database": self._where()},
            )

    def _where(self) -> str:
        return db.printable_url(self.config.database.url)

    def reconfigure(self, config: Config) -> None:
        """A reloaded config (see :func:`daemon.config.reload`): the intake watches its
        folders from now on."""
        with self._tick_lock:
            self.config = config
            self.intake.reconfigure(config, utcnow())

    def _publish(self, now: datetime) -> None:
        """This daemon's heartbeat, for ``status``: which host and pid use this database, and
        the watched folders it misses; written when it changes, else every few seconds."""
        missing = sorted(str(f) for f in self.intake.missing)
        beat = nodes.heartbeat(os.getpid(), missing)
        last = self._published
        if (
            last is not None
            and last[0] == beat
            and (now - last[1]).total_seconds() < HEARTBEAT_SECONDS
        ):
            return
        if last is not None:  # since our last beat, did another machine beat as this node?
            stored = self.store.results.get_state(DAEMON_KEY)
            self.clash = node_clash(self.store.node, stored, last[1], HOST)
            if self.clash is not None:
                log.error("%s; stopping", self.clash)
        self.store.results.set_state(DAEMON_KEY, beat, now)
        self._published = (beat, now)

    def tick_age(self) -> float:
        """Seconds since the last tick completed (the systemd watchdog's liveness test)."""
        return time.monotonic() - self._last_tick

    def describe(self) -> str:
        """One line for systemd's STATUS=: the queue and the plan in force."""
        if self.unreachable is not None:
            return self.unreachable
        try:
            counts = self.store.counts()
        except Exception as exc:
            if not db.unreachable(exc):
                raise
            return "database unreachable; retrying"
        text = (
            f"{counts.get(JobStatus.QUEUED, 0)} queued, {counts.get(JobStatus.RUNNING, 0)} "
            f"running, {counts.get(JobStatus.DONE, 0)} done, "
            f"{counts.get(JobStatus.FAILED, 0)} failed"
        )
        if self.plan is not None:
            p = self.plan
            text += f"; plan {p.profile} {p.workers}x{p.threads} ({p.reason})"
        return text

    def _collect(self, timeout: float = 0.0) -> None:
        for report in self.pool.collect(timeout, on_death=self._worker_died):
            (self.summary.done if report.ok else self.summary.failed).append(report.job_id)
            if self.metrics is not None:
                self._count(self.metrics, report)
            if self.deliverer is not None:
                self.deliverer.wake()

    def _count(self, metrics: Metrics, report: Report) -> None:
        """Count a report; a count that fails is lost (logged), never the report."""
        try:
            metrics.worker_loads(report.pid, report.model_loads)
            if report.failure:
                metrics.attempt_failed(report.failure)
            elif report.ok:
                job = self.store.get(report.job_id)
                if job is not None:
                    metrics.job_done(job)
        except Exception as exc:
            log.warning(
                "metrics: job %s not counted: %s",
                report.job_id,
                type(exc).__name__,
                extra={"job": report.job_id, "error": str(exc)[:200]},
            )

    def _worker_died(self, lease: Lease, exitcode: int | None) -> None:
        """A worker died holding a job (killed by the OOM killer, crashed): the attempt
        counts; retry later (lighter, after running out of memory) or fail."""
        if self.metrics is not None:
            self.metrics.attempt_failed(retry.failure_class(WorkerDied(exitcode)))
        job = self.store.get(lease.job_id)
        if job is None:
            return
        if not settle(self.config, self.store, job, lease, self.clock(), WorkerDied(exitcode)):
            self.summary.failed.append(lease.job_id)

    def _recover_abandoned(self, now: datetime) -> None:
        """Release at once the jobs of this machine's workers that are gone (the daemon was
        killed and restarted; another daemon of this machine on this node name, as ``name-2``,
        was killed), instead of waiting for their leases to expire.  The attempt is not
        counted: the job did nothing wrong.  A worker that outlived its parent releases its job
        itself at its next checkpoint."""
        ours = set(self.pool.owners())
        others = [lease for lease in self.store.leases() if lease.owner not in ours]
        if not others:
            return
        local = nodes.local_nodes(self.store.results.states(DAEMON_KEY))
        here = (local & set(nodes.candidate_names(self.config.daemon.node))) | {self.store.node}
        for lease in others:
            if owner_gone(lease.owner, here, pid_alive) and self.store.release(lease, now):
                log.warning(
                    "job %s was left by a worker that is gone; it resumes",
                    lease.job_id,
                    extra={"job": lease.job_id, "owner": lease.owner},
                )

    def _dispatch(self, now: datetime) -> int:
        waiting, ready = self._waiting(now)
        if not waiting:
            return 0
        queued, seconds, running = self.store.queue_facts(now)
        snapshot = self.sampler.snapshot(now)
        cpu_needed = any(devices.on_gpu(w.device) is False for w in waiting)

        def plan_for(job: JobRecord, dispatched: int) -> Plan:
            return choose(
                snapshot,
                QueueFacts(queued - dispatched, seconds, running),
                _facts(job),
                self.settings,
                now,
                self._requested(job),
                usable_gpus=self.device.usable,
                held_gpus=self.pool.gpus(),
                cpu_needed=cpu_needed,
            )

        first = ready[waiting[0].job_id]
        plan = plan_for(first, 0)
        if plan != self.plan:
            log.info(
                "plan: %s, %d worker(s) x %d thread(s) (%s)",
                plan.profile,
                plan.workers,
                plan.threads,
                plan.reason,
                extra=asdict(plan),
            )
            self.store.results.set_state(PLAN_KEY, asdict(plan), now)
            self.plan = plan
        self.pool.resize(plan.workers, plan.threads, plan.gpus, plan.gpu_threads)
        idle = [(index, self.pool.device(index)) for index in self.pool.idle_slots()]
        dispatched = 0
        for job_id, index in assign(waiting, idle):
            job = ready[job_id]
            profile = plan.profile if job is first else plan_for(job, dispatched).profile
            jobs = self.store.claim(  # the lease runs from now, not from the tick's start
                self.pool.owner(index),
                1,
                self.clock(),
                self.config.daemon.lease_seconds,
                profile=profile,
                job_id=job.id,
                device=self.pool.device(index),
            )
            if not jobs:  # another node took it meanwhile (its slot waits for the next tick)
                continue
            place = output_place(self.config, Path(jobs[0].path))  # a reload's folders too
            self.pool.submit(jobs[0], index, workers=plan.workers, place=place)
            dispatched += 1
        return dispatched

    def _waiting(self, now: datetime) -> tuple[list[Waiting], dict[int, JobRecord]]:
        """The ready jobs this node may run, in queue order (and, where a GPU may take the
        longest, the longest too), as :func:`daemon.planner.assign` takes them."""
        ready = {j.id: j for j in self._ready(now, READY_LOOKED_AT)}
        if self.device.usable:
            longest = self.store.ready(now, READY_LOOKED_AT, longest=True, exclude=self._stranded)
            ready |= {j.id: j for j in longest}
        waiting = [
            Waiting(j.id, estimated_duration(j), j.options.device_request)
            for j in sorted(ready.values(), key=lambda j: j.id)
        ]
        return waiting, ready

    def _ready(self, now: datetime, limit: int) -> list[JobRecord]:
        """Up to ``limit`` ready jobs in queue order, leaving out (and saying once) those that
        ask for a device this node can never run them on: they wait for a node that can."""
        possible = ["cpu", *(f"cuda:{i}" for i in self.device.usable)]
        while True:
            jobs = self.store.ready(now, limit, exclude=self._stranded)
            stranded = [
                j
                for j in jobs
                if not any(devices.fits(j.options.device_request, d) for d in possible)
            ]
            if not stranded:
                return jobs
            for job in stranded:
                self._stranded.add(job.id)
                log.warning(
                    "job %s asks for device %s; this node has %s only: it waits for a node "
                    "that has it",
                    job.id,
                    job.options.device_request,
                    " and ".join(possible),
                    extra={"job": job.id, "device": job.options.device_request},
                )

    def _requested(self, job: JobRecord) -> str | None:
        """What the job asks for (see :func:`daemon.planner.requested_profile`)."""
        original = self.store.get(job.duplicate_of) if job.duplicate_of is not None else None
        return requested_profile(
            job.options, job.profile, original.profile if original is not None else None
        )

    # ------------------------------------------------------------------ burst mode
    def run_once(
        self, stopping: Callable[[], bool] = lambda: False, poll_seconds: float = 0.2
    ) -> Summary:
        """Rescan, process everything pending (including files still settling), then return
        (early, once ``stopping()`` turns true: the caller then stops the pool)."""
        self.summary = Summary()
        self.intake.rescan(utcnow())
        while not stopping():
            now = self.clock()
            self.tick(now)
            if self.pool.busy:
                self._collect(timeout=poll_seconds)
                continue
            if self._ready(now, 1):
                continue  # (a job asking for a device this node lacks is left queued)
            wait = self._next_wait(now)
            if wait is None:
                break
            time.sleep(min(max(wait, 0.05), poll_seconds * 10))
        if self.deliverer is not None and not stopping():  # what is due now; the rest later
            self.deliverer.run_due()
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
            next_run_time=utcnow(),
            id="tick",
        )
        aps.start()
        self._aps = aps
        if self.deliverer is not None:
            self.deliverer.start(every=self.config.daemon.tick_seconds)
        # a worker that reports is given its next job at once, not at the next tick
        self.pool.start_pump(lambda: self.tick())

    def stop(self, timeout: float, urgent: Callable[[], bool] = lambda: False) -> bool:
        """Stop ticking; running jobs checkpoint within ``timeout`` (see WorkerPool.stop).
        Jobs of workers that had to be killed are released at once, not left to their leases."""
        self.pool.stop_pump()  # no dispatch after a report from here on
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        if self.deliverer is not None:
            self.deliverer.stop(timeout)

        def release(lease: Lease) -> None:
            released = False  # if the database is out of reach, its lease expires instead
            with db.outage_ignored():
                released = self.store.release(lease, self.clock())
            if released:
                log.warning(
                    "released job %s of a stopped worker",
                    lease.job_id,
                    extra={"job": lease.job_id},
                )

        clean = self.pool.stop(timeout, urgent=urgent, abandoned=release)
        if self.clash is None:  # the last heartbeat says so: not running from now (the name
            with db.outage_ignored():  # is not ours after a clash; an outage: it ages out)
                stopped = nodes.heartbeat(os.getpid(), stopped=True)
                self.store.results.set_state(DAEMON_KEY, stopped, self.clock())
        return clean
