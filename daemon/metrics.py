"""Prometheus metrics of a running daemon (``[metrics] listen``), with prometheus_client.

Counts that live in the database (jobs by status, the queue and its audio) are read from it at
each scrape, so they are right after a restart and across nodes; what happens in this daemon
(jobs it finished, their duration and real-time factor, step seconds, cache hits, model loads,
failed attempts, its workers) is counted here as it happens, from the workers' reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from daemon.config import parse_listen
from daemon.jobs import JobRecord, JobStatus
from daemon.store import Store

log = logging.getLogger(__name__)

JOB_SECONDS_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
RTF_BUCKETS = (0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class PoolView:
    """What the scrape asks of the worker pool."""

    workers: Callable[[], int]
    threads: Callable[[], int]


class _FromDatabase(Collector):
    """Gauges read from the job table at scrape time."""

    def __init__(self, store: Store, clock: Callable[[], datetime], pool: PoolView) -> None:
        self.store, self.clock, self.pool = store, clock, pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = self.store.counts()
            queued, seconds, _running = self.store.queue_facts(self.clock())
        except Exception as exc:  # the database is away: the scrape still answers, saying so
            log.warning(
                "metrics: cannot read the job table: %s",
                type(exc).__name__,
                extra={"error": str(exc)[:200]},
            )
            counts, queued, seconds = None, 0, 0.0
        yield GaugeMetricFamily(
            "transcribd_database_up",
            "1 when the job table could be read",
            float(counts is not None),
        )
        if counts is not None:
            jobs = GaugeMetricFamily(
                "transcribd_jobs", "Jobs in the database by status", labels=["status"]
            )
            for status in JobStatus:
                jobs.add_metric([status.value], counts.get(status, 0))
            yield jobs
            yield GaugeMetricFamily(
                "transcribd_queue_depth",
                "Jobs queued (those waiting out a backoff included)",
                queued,
            )
            yield GaugeMetricFamily(
                "transcribd_queue_audio_seconds",
                "Seconds of audio waiting in the queue (estimated from size where unknown)",
                seconds,
            )
        yield GaugeMetricFamily(
            "transcribd_workers", "Worker processes of this daemon", self.pool.workers()
        )
        yield GaugeMetricFamily(
            "transcribd_worker_threads",
            "Compute threads granted to each worker",
            self.pool.threads(),
        )


class Metrics:
    """This daemon's metrics in their own registry (tests may hold several)."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        pool: PoolView,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.job_seconds = Histogram(
            "transcribd_job_duration_seconds",
            "Wall seconds of a job's last attempt, by profile and device",
            ["profile", "device"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=r,
        )
        self.rtf = Histogram(
            "transcribd_job_real_time_factor",
            "Wall seconds per second of audio, by profile and device",
            ["profile", "device"],
            buckets=RTF_BUCKETS,
            registry=r,
        )
        self.audio = Counter(
            "transcribd_audio_seconds",
            "Seconds of audio transcribed, by profile and device (per-device throughput: "
            "this over transcribd_job_duration_seconds_sum)",
            ["profile", "device"],
            registry=r,
        )
        self.step_seconds = Counter(
            "transcribd_step_seconds", "Seconds spent computing each step", ["step"], registry=r
        )
        self.computed = Counter(
            "transcribd_steps_computed", "Steps computed (cache misses)", ["step"], registry=r
        )
        self.cache_hits = Counter(
            "transcribd_step_cache_hits", "Steps served from the cache", ["step"], registry=r
        )
        self.model_loads = Counter(
            "transcribd_model_loads", "Models loaded by the workers", registry=r
        )
        self.failures = Counter(
            "transcribd_attempt_failures",
            "Job attempts that ended in an error, by reason class",
            ["reason"],
            registry=r,
        )
        self.hooks = Counter(
            "transcribd_hook_tries",
            "Tries of hook commands and the webhook, by outcome (delivered, retry, failed)",
            ["kind", "outcome"],
            registry=r,
        )
        r.register(_FromDatabase(store, clock, pool))
        self._loads: dict[int, int] = {}
        self._server: Any = None

    def job_done(self, job: JobRecord) -> None:
        """A job this daemon's workers finished: its duration, speed and steps."""
        m = job.metrics or {}
        profile = str(m.get("profile") or job.profile or "unknown")
        device = str(m.get("device") or job.device or "cpu")
        if m.get("wall_seconds") is not None:
            self.job_seconds.labels(profile, device).observe(float(m["wall_seconds"]))
        if m.get("rtf") is not None:
            self.rtf.labels(profile, device).observe(float(m["rtf"]))
        self.audio.labels(profile, device).inc(float(m.get("audio_seconds") or 0.0))
        steps = m.get("steps") or {}
        for step, seconds in (steps.get("seconds") or {}).items():
            self.step_seconds.labels(step).inc(float(seconds))
        for step, n in (steps.get("computed") or {}).items():
            self.computed.labels(step).inc(n)
        for step, n in (steps.get("cached") or {}).items():
            self.cache_hits.labels(step).inc(n)

    def hook_outcome(self, kind: str, outcome: str) -> None:
        self.hooks.labels(kind, outcome).inc()

    def attempt_failed(self, reason: str) -> None:
        self.failures.labels(reason).inc()

    def worker_loads(self, pid: int, loads: int) -> None:
        """A worker's running total of model loads (counted once each; a total below the one
        kept for its pid is a new worker's, idle workers exiting and pids being reused)."""
        before = self._loads.get(pid, 0)
        new = loads - before if loads >= before else loads
        if new > 0:
            self.model_loads.inc(new)
        self._loads[pid] = loads

    def serve(self, listen: str) -> tuple[str, int]:
        """Serve ``/metrics`` on ``listen`` from a thread; the address it is bound to."""
        from prometheus_client import start_http_server

        host, port = parse_listen(listen)
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = self._server.server_address
        log.info("metrics on http://%s:%d/metrics", host, bound[1], extra={"listen": listen})
        return host, int(bound[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
