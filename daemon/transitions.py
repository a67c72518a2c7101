"""How a claimed job's state changes under its lease: claimed from the queue by a worker, its
heartbeat, and its end (done, failed, cancelled, back to the queue for a retry, released at a
checkpoint), each one guarded UPDATE that changes nothing once the lease is no longer held; and
expired leases recovered.  :class:`daemon.store.Store` is built on it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.orm import aliased

from daemon import hooks
from daemon.hooks import Announce
from daemon.jobs import JobOptions, JobRecord, JobStatus, Lease
from daemon.models import Job
from daemon.outbox import Outbox
from daemon.rows import JOBS, TERMINAL, from_row, off_lease
from daemon.transcripts import Transcripts

log = logging.getLogger(__name__)


class JobTransitions:
    """The changes of running jobs' rows, each guarded by the job's lease (owner and attempt);
    a call that loses the race returns False and changes nothing.  :class:`daemon.store.Store`
    sets the attributes below (its engine, its node, which announcements a job's end makes,
    and their outbox)."""

    engine: Engine
    node: str
    announce: Announce
    outbox: Outbox

    # ------------------------------------------------------------------ workers
    def claim(
        self,
        owner: str,
        limit: int,
        now: datetime,
        lease_seconds: float,
        profile: str | None = None,
        job_id: int | None = None,
        device: str | None = None,
    ) -> list[JobRecord]:
        """Move up to ``limit`` ready jobs (or job ``job_id``, if it is still ready) from
        queued to running under ``owner``'s lease, on a worker of ``device``, in one
        statement.  On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``: claimers
        on other nodes skip each other's rows instead of waiting, and no row is claimed twice;
        SQLite runs one writer at a time.

        A duplicate waits until its original is done or failed, so that it is served from the
        cache instead of computing the same content twice.
        """
        values = self._claimed(owner, now, lease_seconds, profile)
        if device is not None:
            values["device"] = device
        ready = self._ready(now)
        if job_id is not None:
            ready = ready.where(Job.id == job_id)
        # a CTE, materialized: the picked rows are read (and locked) once; as a plain
        # subquery PostgreSQL may run it again per row and take more than ``limit``
        picked = (
            ready.limit(limit)
            .with_for_update(skip_locked=True, of=Job)
            .cte("picked")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        stmt = (
            update(Job)
            .where(Job.id.in_(select(picked.c.id)), Job.status == JobStatus.QUEUED)
            .values(**values)
            .returning(*JOBS.c)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((from_row(r) for r in rows), key=lambda j: j.id)

    def _claimed(
        self, owner: str, now: datetime, lease_seconds: float, profile: str | None
    ) -> dict[str, Any]:
        """The values of a job as ``owner`` claims it for this node."""
        values: dict[str, Any] = {
            "status": JobStatus.RUNNING,
            "lease_owner": owner,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "attempts": Job.attempts + 1,
            "runs": Job.runs + 1,
            "started_at": now,
            "updated_at": now,
            "error": None,
            "node": self.node,
        }
        if profile is not None:
            values["profile"] = profile
        return values

    @staticmethod
    def _ready(now: datetime) -> Any:
        """Queued, past any backoff, and (for a duplicate) its original finished."""
        original = aliased(Job)
        return (
            select(Job.id)
            .outerjoin(original, Job.duplicate_of == original.id)
            .where(
                Job.status == JobStatus.QUEUED,
                or_(Job.run_after.is_(None), Job.run_after <= now),
                or_(Job.duplicate_of.is_(None), original.status.in_(TERMINAL)),
            )
            .order_by(Job.id)
        )

    @staticmethod
    def _running(lease: Lease) -> Any:
        """The job, while still running under ``lease`` (owner and attempt)."""
        return and_(
            Job.id == lease.job_id,
            Job.status == JobStatus.RUNNING,
            Job.lease_owner == lease.owner,
            Job.attempts == lease.attempt,
        )

    def heartbeat(
        self,
        lease: Lease,
        now: datetime,
        lease_seconds: float,
        progress: float | None = None,
    ) -> bool:
        """Renew the lease (and record progress); False if the job is no longer ours."""
        values: dict[str, Any] = {
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "updated_at": now,
        }
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        return self._update(self._running(lease), values)

    def finish(
        self,
        lease: Lease,
        now: datetime,
        outputs: Sequence[str],
        metrics: dict[str, Any] | None = None,
        transcript: tuple[dict[str, Any], dict[str, str]] | None = None,
    ) -> bool:
        """Running -> done with its outputs (and metrics); ``transcript`` (its record and its
        speakers' names, :mod:`daemon.transcripts`) is kept in the same transaction."""
        values = off_lease(
            now,
            status=JobStatus.DONE,
            progress=1.0,
            outputs=list(outputs),
            finished_at=now,
            error=None,
            run_after=None,
        )
        if metrics is not None:
            values["metrics"] = metrics

        def keep(conn: Any) -> None:
            if transcript is not None:
                Transcripts.put(conn, lease.job_id, transcript[0], transcript[1], now)

        return self._end(self._running(lease), values, "done", now, also=keep)

    def hold_outputs(self, lease: Lease, outputs: Sequence[str]) -> bool:
        """Record the files a running job is about to publish as its outputs (with its earlier
        ones), before they appear: should the attempt end before the job is done (killed as it
        publishes), its next attempt finds them as its own and writes over them, never beside
        them, and no other job takes their names.  False if the job is no longer ours (then it
        must publish nothing)."""
        return self._update(self._running(lease), {"outputs": list(outputs)})

    def cancel(self, lease: Lease, now: datetime, reason: str) -> bool:
        """Running -> cancelled (its input was removed); cached steps stay."""
        return self._update(
            self._running(lease),
            off_lease(now, status=JobStatus.CANCELLED, error=reason, finished_at=now),
        )

    def owns(self, lease: Lease) -> bool:
        """Whether the lease is still held (else its worker must publish nothing)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Job.id).where(self._running(lease))).first()
        return row is not None

    def fail(
        self,
        lease: Lease,
        now: datetime,
        error: str,
        hold: float = 0.0,
        metrics: dict[str, Any] | None = None,
    ) -> bool:
        """Running -> failed, with the error kept for ``status`` (and ``metrics``: the
        failure's class, for the HTTP face's status code); its announcements are due ``hold``
        seconds from now (see :func:`daemon.hooks.hold_seconds`)."""
        values = off_lease(now, status=JobStatus.FAILED, error=error, finished_at=now)
        if metrics is not None:
            values["metrics"] = metrics
        return self._end(
            self._running(lease),
            values,
            "failed",
            now,
            due=now + timedelta(seconds=hold) if hold > 0 else None,
        )

    def retry(
        self,
        lease: Lease,
        now: datetime,
        error: str,
        run_after: datetime,
        options: JobOptions | None = None,
    ) -> bool:
        """Running -> queued, not before ``run_after``, keeping the error for ``status``
        (and new ``options``, e.g. a lighter profile after running out of memory)."""
        values = off_lease(now, status=JobStatus.QUEUED, error=error, run_after=run_after)
        if options is not None:
            values["options"] = options.to_dict()
        return self._update(self._running(lease), values)

    def leases(self) -> list[Lease]:
        """The leases of every running job."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Job.id, Job.lease_owner, Job.attempts).where(Job.status == JobStatus.RUNNING)
            ).all()
        return [Lease(int(i), str(o), int(a)) for i, o, a in rows if o]

    def release(self, lease: Lease, now: datetime) -> bool:
        """Running -> queued without counting the attempt (graceful stop)."""
        return self._update(
            self._running(lease),
            off_lease(now, status=JobStatus.QUEUED, attempts=Job.attempts - 1),
        )

    def recover_expired(self, now: datetime, max_attempts: int = 0) -> list[int]:
        """Running jobs whose lease expired (their worker or its node died, or stalled) go back
        to queued; with ``max_attempts``, one that has had that many attempts fails instead
        (a file that kills whatever runs it must not go round for ever)."""
        expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
        with self.engine.connect() as conn:  # a read first: no write lock on every tick
            if conn.execute(select(Job.id).where(expired).limit(1)).first() is None:
                return []
        spent = Job.attempts >= max_attempts if max_attempts else None
        with self.engine.begin() as conn:
            if spent is not None:
                error = f"its worker stopped answering in {max_attempts} attempts (lease expired)"
                failed = conn.execute(
                    update(Job)
                    .where(expired, spent)
                    .values(**off_lease(now, status=JobStatus.FAILED, error=error))
                    .values(finished_at=now)
                    .returning(*JOBS.c)
                ).all()
                for row in failed:
                    self._announce(conn, from_row(row), "failed", now)
                if gave_up := [row.id for row in failed]:
                    log.error("failed %d job(s): %s", len(gave_up), error, extra={"jobs": gave_up})
            recovered = list(
                conn.execute(
                    update(Job)
                    .where(expired)
                    .values(**off_lease(now, status=JobStatus.QUEUED))
                    .returning(Job.id)
                ).scalars()
            )
        if recovered:
            log.warning(
                "recovered %d job(s) with expired leases", len(recovered), extra={"jobs": recovered}
            )
        return recovered

    def _end(
        self,
        where: Any,
        values: dict[str, Any],
        event: str,
        now: datetime,
        due: datetime | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> bool:
        """A running job's last change (done or failed), and in the same transaction the
        announcements of its end (due at ``due``, default now) and ``also(conn)``: all
        happen or none."""
        with self.engine.begin() as conn:
            row = conn.execute(update(Job).where(where).values(**values).returning(*JOBS.c)).first()
            if row is not None:
                if also is not None:
                    also(conn)
                self._announce(conn, from_row(row), event, now, due)
        return row is not None

    def _announce(
        self, conn: Any, job: JobRecord, event: str, now: datetime, due: datetime | None = None
    ) -> None:
        kinds = self.announce.kinds(event)
        if kinds:
            payload = hooks.payload(job, event)
            self.outbox.add(conn, job.id, job.runs, kinds, event, payload, now, due)

    def _update(self, where: Any, values: dict[str, Any]) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(update(Job).where(where).values(**values))
        return res.rowcount == 1
