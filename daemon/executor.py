"""One claimed job from its start to its final state: run under its lease (a heartbeat thread
renews it), publish only while the lease is held, then record it done, retried, failed or
released; a job's own errors never escape."""

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

from daemon import db, retry, voices
from daemon.config import Config
from daemon.errors import Cancelled, InputRemoved
from daemon.jobrun import run_pipeline, spool_path
from daemon.jobs import JobRecord, Lease
from daemon.pipeline import spool as spool_mod
from daemon.pipeline.cache import never
from daemon.pipeline.run import PipelineResult
from daemon.publish import matches_record, voice_matches, write_job_outputs
from daemon.store import Store
from daemon.sysload import peak_rss, usable_cores
from daemon.warm import WarmModels

log = logging.getLogger(__name__)


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
    elif store.fail(lease, now, decision.message):
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
                result = self._run(job, lease, key, lost.is_set)
                if not self.store.owns(lease):  # fenced: publish nothing
                    raise Cancelled("the job is no longer this worker's")
                matches = voice_matches(self.config, self.store, Path(job.path), result.voiceprints)
                names = voices.names(matches, job.options.names)
                with result.stats.timed("outputs"):
                    outputs = write_job_outputs(
                        self.config, self.store, job, result.transcript, names, place
                    )
        except Cancelled:
            if self._released(lease):
                return False  # the same attempt resumes, with its spool
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
                for path in set(outputs) - self.store.outputs_in_use():
                    Path(path).unlink(missing_ok=True)
                log.warning("job %s was superseded as it finished", job.id, extra={"job": job.id})
        spool_mod.drop(spool_path(self.config, job.sha256, key))  # this attempt has ended
        return done

    def _finish(
        self, lease: Lease, job: JobRecord, outputs: list[str], metrics: dict[str, Any]
    ) -> bool:
        """Record the job done with its outputs.  While the database is out of reach, try
        again for as long as the lease lasts; then take back the files that no job records
        (a later attempt writes them again) and give up."""
        deadline = time.monotonic() + self.config.daemon.lease_seconds
        while True:
            try:
                return self.store.finish(lease, self.now(), outputs, metrics)
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
        return {
            **run_metrics(result, started, cpu_started, self.models.device.name),
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
