"""One claimed job from its start to its final state: run under its lease (a heartbeat thread
renews it), publish only while the lease is held, then record it done, retried, failed or
released; a job's own errors never escape, and a database outage is waited out under the
lease (the job goes on as soon as the database answers)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon import db, hooks, retry, voices
from daemon.config import Config
from daemon.errors import Cancelled, InputRemoved
from daemon.jobrun import reference_voices, run_pipeline, spool_path
from daemon.jobs import JobRecord, JobStatus, Lease
from daemon.pipeline import spool as spool_mod
from daemon.pipeline.cache import never
from daemon.pipeline.outputs import to_record
from daemon.pipeline.run import PipelineResult
from daemon.publish import matches_record, voice_matches, write_job_outputs
from daemon.store import Store
from daemon.sysload import peak_rss, usable_cores
from daemon.warm import WarmModels

log = logging.getLogger(__name__)

OUTAGE_POLL_SECONDS = 1.0
"""How often a job that lost its database asks whether it answers again."""


@contextmanager
def lease_keeper(
    store: Store, lease: Lease, lease_seconds: float, lost: threading.Event
) -> Iterator[None]:
    """Renew the job's lease in the background while the body runs; ``lost`` is set once the
    lease is lost: the job was superseded or recovered after a stall (a heartbeat changed no
    row), or no heartbeat reached the database for as long as a lease lasts (another node
    may have taken the job by then)."""
    stop = threading.Event()
    job_id = lease.job_id

    def beat() -> None:
        renewed = time.monotonic()
        while not stop.wait(lease_seconds / 3):
            try:
                held = store.heartbeat(lease, store.now(), lease_seconds)
            except Exception as exc:
                if not db.unreachable(exc):
                    raise
                if time.monotonic() - renewed < lease_seconds:
                    log.warning(
                        "job %s: database unreachable, lease not renewed (%s)",
                        job_id,
                        type(exc).__name__,
                        extra={"job": job_id},
                    )
                    continue
                held = False
            if not held:
                log.warning("lost the lease of job %s", job_id, extra={"job": job_id})
                lost.set()
                return
            renewed = time.monotonic()

    thread = threading.Thread(target=beat, name=f"lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def settle(
    config: Config, store: Store, job: JobRecord, lease: Lease, now: datetime, exc: BaseException
) -> bool:
    """A running job's attempt ended in ``exc``: decide (:func:`daemon.retry.decide`) and apply
    it: back to the queue (with its new options) not before ``run_after``, or failed with the
    message; the attempt's spool goes either way.  True when it will run again."""
    spool_mod.drop(spool_path(config, job.sha256, spool_mod.job_key(job.id, lease.attempt)))
    d = config.daemon
    decision = retry.decide(
        exc,
        lease.attempt,
        d.max_attempts,
        now,
        job.profile,
        backoff=d.backoff_seconds,
        resource_backoff=d.resource_backoff_seconds,
        device=job.device,
    )
    extra = {"job": job.id, "error": decision.message}
    if decision.retry and decision.run_after is not None:
        options = decision.options_for_retry(job.options)
        if store.retry(lease, now, decision.message, decision.run_after, options):
            log.warning("job %s will retry: %s", job.id, decision.message, extra=extra)
            return True
    else:
        failure = retry.failure_class(exc)
        hold = hooks.hold_seconds(failure, config.hooks.failure_hold_seconds)
        metrics = {**job.metrics, "failure": failure}
        if store.fail(lease, now, decision.message, hold, metrics):
            log.error("job %s failed: %s", job.id, decision.message, extra=extra)
            return False
    log.warning("job %s ended (%s) after it was superseded", job.id, decision.message, extra=extra)
    return False


@dataclass
class Executor:
    """Processes one claimed job from start to its final state; a job's own errors never
    escape it."""

    config: Config
    store: Store
    models: WarmModels
    owner: str
    threads: int = 0
    """This worker's share of the cores (0: every usable core)."""
    clock: Callable[[], datetime] | None = None
    """The time of the job's changes (default: the store's, see :meth:`Store.now`)."""
    should_stop: Callable[[], bool] = never
    """True asks the running job to stop at its next checkpoint (graceful shutdown)."""

    def __post_init__(self) -> None:
        self.now: Callable[[], datetime] = self.clock or self.store.now
        self.failure = ""
        """The reason class of the last attempt's error ("" when it had none)."""
        self.transcript: tuple[dict[str, Any], dict[str, str]] | None = None
        """The transcript the attempt produced (its record and names), kept as it ends done."""

    def execute(
        self, job: JobRecord, workers: int = 1, place: tuple[Path, str] | None = None
    ) -> bool:
        """Run a claimed job to its final state; True when it ended done.  ``workers``: how
        many workers the plan runs (recorded with the job's metrics); ``place``: where its
        transcripts go (default: from this executor's config)."""
        started, cpu_started = time.perf_counter(), time.process_time()
        self.failure = ""
        lease = Lease(job.id, self.owner, job.attempts)
        key = spool_mod.job_key(job.id, job.attempts)
        lost = threading.Event()
        log.info("job %s started", job.id, extra={"job": job.id, "path": job.path})
        try:
            with lease_keeper(self.store, lease, self.config.daemon.lease_seconds, lost):
                result, matches, outputs = self._produce(job, lease, key, lost.is_set, place)
        except Cancelled:  # stopped, or no longer ours: it resumes from its cached steps
            # its spool goes first: the attempt that resumes it has the same spool name
            spool_mod.drop(spool_path(self.config, job.sha256, key))
            self._released(lease)
            done = False
        except InputRemoved as exc:
            self.store.cancel(lease, self.now(), str(exc))
            log.warning("job %s cancelled: %s", job.id, exc, extra={"job": job.id})
            done = False
        except Exception as exc:  # a bad job must never stop the daemon
            self.failure = "database" if db.unreachable(exc) else retry.failure_class(exc)
            if db.unreachable(exc):  # not the job's fault: its lease lapses, it resumes
                log.warning(
                    "job %s stopped: the database is unreachable (%s); it resumes once the "
                    "database is back",
                    job.id,
                    exc,
                    extra={"job": job.id},
                )
            else:
                settle(self.config, self.store, job, lease, self.now(), exc)
            done = False
        else:
            metrics = self._metrics(result, started, cpu_started, workers)
            if matches:
                metrics["voices"] = matches_record(matches)
            done = self._finish(lease, job, outputs, metrics)
            if done:
                log.info("job %s done", job.id, extra={"job": job.id, **metrics})
            else:  # superseded between the last check and now: take back what it wrote
                self._take_back(job, outputs)
                log.warning("job %s was superseded as it finished", job.id, extra={"job": job.id})
        spool_mod.drop(spool_path(self.config, job.sha256, key))  # the attempt ended or stopped
        return done

    def _produce(
        self,
        job: JobRecord,
        lease: Lease,
        spool_key: str,
        lost: Callable[[], bool],
        place: tuple[Path, str] | None,
    ) -> tuple[PipelineResult, list[voices.Match], list[str]]:
        """The job's transcript, the enrolled voices it heard and the files it published, under
        its lease.  A database outage on the way is waited out while the lease holds
        (:meth:`_outlast`): the job then goes on here, as the same attempt, from its cached
        steps."""
        while True:
            try:
                result = self._run(job, lease, spool_key, lost)
                if not self.store.owns(lease):  # fenced: publish nothing
                    raise Cancelled("the job is no longer this worker's")
                matches = voice_matches(
                    self.config, self.store, Path(job.path), result.voiceprints, self._known(job)
                )
                names = voices.names(matches, job.options.names)
                self.transcript = (to_record(result.transcript), names)
                if job.options.task == "language":  # only a language asked for: no files
                    return result, matches, []
                with result.stats.timed("outputs"):
                    outputs = write_job_outputs(
                        self.config, self.store, job, result.transcript, names, place, lease
                    )
                return result, matches, outputs
            except Exception as exc:
                if not db.unreachable(exc):
                    raise
                self._outlast(lease, lost, exc)

    def _known(self, job: JobRecord) -> list[voices.Voice]:
        """The voices of the known speakers the job's request gave (none for most jobs)."""
        known = job.options.known_speakers
        if not known:
            return []
        return reference_voices(self.config, self.models, self.store, known)

    def _outlast(self, lease: Lease, lost: Callable[[], bool], exc: Exception) -> None:
        """The database went away under the running job: wait for it while the lease holds
        (nobody else may take the job before it expires), then renew the lease and return as
        soon as the database answers.  Raises ``exc`` again when the wait ends otherwise (a
        stop was asked for, or the lease lapsed meanwhile: the job resumes later, from its
        cached steps), :class:`Cancelled` when the job is no longer this worker's."""
        job_id, seconds = lease.job_id, self.config.daemon.lease_seconds
        log.warning(
            "job %s: the database is unreachable (%s); the job keeps its lease and goes on "
            "once the database answers",
            job_id,
            db.reason(exc),
            extra={"job": job_id},
        )
        while not (lost() or self.should_stop()):
            time.sleep(OUTAGE_POLL_SECONDS)
            try:
                held = self.store.heartbeat(lease, self.now(), seconds)
            except Exception as again:
                if not db.unreachable(again):
                    raise
                continue
            if not held:
                raise Cancelled("the job is no longer this worker's")
            log.info(
                "job %s: the database answers again; the job goes on from its cached steps",
                job_id,
                extra={"job": job_id},
            )
            return
        raise exc

    def _finish(
        self, lease: Lease, job: JobRecord, outputs: list[str], metrics: dict[str, Any]
    ) -> bool:
        """Record the job done with its outputs.  While the database is out of reach, try
        again for as long as the lease lasts; then take back the files that no job records
        (a later attempt writes them again) and give up."""
        deadline = time.monotonic() + self.config.daemon.lease_seconds
        while True:
            try:
                return self.store.finish(lease, self.now(), outputs, metrics, self.transcript)
            except Exception as exc:
                if not db.unreachable(exc) or time.monotonic() > deadline:
                    for path in set(outputs) - set(job.outputs):
                        Path(path).unlink(missing_ok=True)
                    raise
                log.warning(
                    "job %s: the database is unreachable as the job ends; trying again",
                    job.id,
                    extra={"job": job.id},
                )
                time.sleep(2.0)

    def _take_back(self, job: JobRecord, outputs: list[str]) -> None:
        """The job's lease went as it finished: remove the files it published that no other
        job records, unless the job is queued, running or done again (recovered after a
        stall: the names it holds are its next attempt's to write over)."""
        current = self.store.get(job.id)
        live = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE)
        if current is not None and current.status in live:
            return
        for path in set(outputs) - self.store.outputs_in_use(but=job.id):
            Path(path).unlink(missing_ok=True)

    def _released(self, lease: Lease) -> bool:
        """The job stopped at a checkpoint (asked to, or its lease was lost): release it;
        True when it was still this worker's to release."""
        if self.store.release(lease, self.now()):
            log.info(
                "job %s stopped at a checkpoint; it resumes from its finished steps",
                lease.job_id,
                extra={"job": lease.job_id},
            )
            return True
        log.warning(
            "job %s is no longer this worker's (superseded, or recovered after a stall); "
            "nothing was published",
            lease.job_id,
            extra={"job": lease.job_id},
        )
        return False

    def _run(
        self, job: JobRecord, lease: Lease, spool_key: str, lost: Callable[[], bool]
    ) -> PipelineResult:
        seconds = self.config.daemon.lease_seconds
        last_beat = [0.0]

        def on_progress(p: float) -> None:
            t = time.perf_counter()
            if t - last_beat[0] >= 1.0 or p >= 1.0:
                last_beat[0] = t
                with db.outage_ignored():  # a progress report; the lease keeper judges outages
                    self.store.heartbeat(lease, self.now(), seconds, progress=p)

        return run_pipeline(
            self.config,
            self.models,
            self.store,
            Path(job.path),
            job.sha256,
            job.options,
            previous_profile=job.profile,
            threads=self.threads,
            spool_key=spool_key,
            on_progress=on_progress,
            clock=self.now,
            should_stop=lambda: self.should_stop() or lost(),
        )

    def _metrics(
        self, result: PipelineResult, started: float, cpu_started: float, workers: int
    ) -> dict[str, Any]:
        language: dict[str, Any] = {"code": result.transcript.language}
        if result.language_probability is not None:
            language["probability"] = round(result.language_probability, 4)
        return {
            **run_metrics(result, started, cpu_started, self.models.device.name),
            "language": language,
            "model_loads": self.models.loads,
            "workers": workers,
            "threads": self.threads or usable_cores(),
            "peak_rss": peak_rss(),
            "pid": os.getpid(),
        }


def run_metrics(
    result: PipelineResult, started: float, cpu_started: float, device: str = "cpu"
) -> dict[str, Any]:
    """A pipeline run's figures (a job's metrics, ``transcribe --metrics``): wall and CPU
    seconds since ``started`` / ``cpu_started``, audio seconds, real-time factor, the steps,
    and the device the models ran on."""
    wall = time.perf_counter() - started
    return {
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(time.process_time() - cpu_started, 3),
        "audio_seconds": round(result.audio_seconds, 3),
        "rtf": round(wall / result.audio_seconds, 4) if result.audio_seconds else None,
        "steps": result.stats.as_dict(),
        "profile": result.transcript.profile,
        "device": device,
    }
