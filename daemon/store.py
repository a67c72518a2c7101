"""The only code that reads or writes job rows, with its base :mod:`daemon.transitions` and
:mod:`daemon.rows` (the step cache and published facts are in :mod:`daemon.results`, reached as
``Store.results``).

Every state change is a single guarded UPDATE (``... WHERE id = ? AND status = ?`` and, for a
running job's own transitions, ``AND lease_owner = ?``); a call that loses the race returns False
and changes nothing.  Two changes are not a worker's own: recovering expired leases, and a new job
superseding its path's older ones (which takes the lease from a running one: it is fenced and
publishes nothing).  Times are passed in (``now``) so that callers and tests control the clock.

A running job's own transitions (claim, heartbeat, its end) are in
:class:`daemon.transitions.JobTransitions`, the base of :class:`Store`; here are the store's
construction and clock, the reads, the intake and the users' changes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select, update

from daemon import db
from daemon.config import Config
from daemon.errors import UserError
from daemon.hooks import NOTHING, Announce
from daemon.jobs import AudioFacts, Enqueued, JobOptions, JobRecord, JobStatus, Requeued
from daemon.keybook import KeyBook, Sessions
from daemon.models import Job
from daemon.outbox import Outbox
from daemon.results import Results
from daemon.rows import JOBS, TERMINAL, from_row, off_lease
from daemon.transcripts import Transcripts
from daemon.transitions import JobTransitions
from daemon.voicebook import VoiceBook

log = logging.getLogger(__name__)

UNREAD = ""
"""The sha256 of a job refused at intake before its content could be read."""
BYTES_PER_SECOND = 16000.0
"""A queued file of unknown length is estimated at this rate (a 128 kbit/s stream)."""


def utcnow() -> datetime:
    """This machine's clock: naive UTC, as the store takes and gives times."""
    return datetime.now(UTC).replace(tzinfo=None)


def why_not_requeued(job: JobRecord | None) -> str | None:
    """Why a job cannot go back to the queue, or None when it can (pure)."""
    if job is None:
        return "no such job"
    if job.status not in TERMINAL:
        return f"job is {job.status.value}"
    if job.status is JobStatus.SUPERSEDED:
        return f"{job.error}; requeue that one"
    if job.sha256 == UNREAD:
        return f"refused at intake ({job.error}); fix that, then touch the file"
    return None


def _insert(conn: Any, now: datetime, unique: bool, **values: Any) -> Any:
    """A new job row (nothing done yet, then ``values``) and its id; with ``unique``, None
    instead when it would break the one-live-job-per-path-and-content index."""
    row = {"attempts": 0, "progress": 0.0, "outputs": [], "metrics": {}, **values}
    stmt: Any = db.insert(conn)(Job).values(**row, created_at=now, updated_at=now)
    if unique:
        stmt = stmt.on_conflict_do_nothing()
    return conn.execute(stmt.returning(Job.id)).scalar_one_or_none()


def _supersede(conn: Any, path: str, job_id: int, now: datetime) -> list[int]:
    """The ids of ``path``'s older jobs, superseded now by job ``job_id`` (a running one loses
    its lease: it is fenced and publishes nothing)."""
    older = conn.execute(
        update(Job)
        .where(Job.path == path, Job.id != job_id, Job.status != JobStatus.SUPERSEDED)
        .values(
            **off_lease(
                now,
                status=JobStatus.SUPERSEDED,
                error=f"superseded by #{job_id} (new content at this path)",
                finished_at=now,
            )
        )
        .returning(Job.id)
    )
    return list(older.scalars())


def open_store(config: Config, migrate: bool | None = None, read_only: bool = False) -> Store:
    """The store of the configured database for this node.  ``migrate``: bring the schema to
    head first; None (commands such as ``add``): on SQLite, yes; on a server shared by a
    fleet, only check that this version knows the schema (a newer transcribd on a laptop must
    not migrate the fleet's database: ``run`` and ``db upgrade`` do).  ``read_only``
    (``status``, ``nodes``): never create nor migrate: :class:`UserError` in one line when
    the database does not exist yet or is not at this version's schema."""
    if read_only and (missing := db.absent(config.database.url)) is not None:
        raise UserError(missing)
    engine = db.make_engine(config.database.url, create=not read_only)
    try:
        if read_only:
            db.check_schema(engine)
        elif migrate or (migrate is None and not db.is_server(config.database.url)):
            db.upgrade(engine)
        elif migrate is None:
            db.check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    h = config.hooks
    announce = Announce(bool(h.on_done), bool(h.on_failed), bool(h.webhook))
    return Store(engine, node=config.daemon.node, announce=announce)


def estimated_duration(job: JobRecord) -> float:
    """Seconds of audio in a job's file: measured at intake, else estimated from its size."""
    return job.duration or job.size / BYTES_PER_SECOND


class Store(JobTransitions):
    def __init__(
        self,
        engine: Engine,
        node: str = "",
        local_clock: Callable[[], datetime] = utcnow,
        announce: Announce = NOTHING,
    ) -> None:
        self.engine = engine
        self.node = node
        """The node whose store this is: recorded with the jobs it claims."""
        self.results = Results(engine, node)
        """The step cache and the daemon's published facts (not job rows)."""
        self.announce = announce
        """Which announcements (hooks, webhook) a job's end makes."""
        self.outbox = Outbox(engine)
        """The announcements of jobs' ends, until delivered."""
        self.voices = VoiceBook(engine)
        """The enrolled voices (not job rows)."""
        self.keys = KeyBook(engine)
        """The HTTP face's keys (hashed)."""
        self.sessions = Sessions(engine)
        """The pages' sign-ins."""
        self.transcripts = Transcripts(engine)
        """Done jobs' transcripts and their speakers' names."""
        self.local_clock = local_clock
        self._server_clock = db.is_server(str(engine.url))

    def close(self) -> None:
        """Close the connections this store holds (a command ends; the daemon stops)."""
        self.engine.dispose()

    def now(self) -> datetime:
        """The time that leases, backoffs and heartbeats are reckoned in: the database
        server's clock when several machines share it (a node whose own clock is off neither
        takes others' leases early nor loses its own), else this machine's."""
        if not self._server_clock:
            return self.local_clock()
        with self.engine.connect() as conn:
            moment: datetime = conn.execute(select(func.now())).scalar_one()
        return moment.astimezone(UTC).replace(tzinfo=None)

    # ------------------------------------------------------------------ reads
    def get(self, job_id: int) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(Job.id == job_id)).first()
        return from_row(row) if row else None

    def jobs(self, statuses: Iterable[JobStatus] | None = None) -> list[JobRecord]:
        stmt = select(JOBS).order_by(Job.id)
        if statuses is not None:
            stmt = stmt.where(Job.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return [from_row(r) for r in conn.execute(stmt)]

    def counts(self) -> dict[JobStatus, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        return {JobStatus(s): int(n) for s, n in rows}

    def queue_facts(self, now: datetime) -> tuple[int, float, int]:
        """(queued jobs, their audio seconds, running jobs); unknown durations are estimated
        as :func:`estimated_duration` does."""
        queued, running = Job.status == JobStatus.QUEUED, Job.status == JobStatus.RUNNING
        seconds = func.coalesce(Job.duration, Job.size / BYTES_PER_SECOND)
        facts = select(
            func.count().filter(queued),
            func.sum(seconds).filter(queued),
            func.count().filter(running),
        )
        with self.engine.connect() as conn:  # one query, each tick
            count, total, busy = conn.execute(facts).one()
        return int(count), float(total or 0.0), int(busy)

    def ready(
        self, now: datetime, limit: int, longest: bool = False, exclude: Iterable[int] = ()
    ) -> list[JobRecord]:
        """Up to ``limit`` jobs :meth:`claim` could take now, but those of ``exclude``: first
        in line, or (``longest``) the longest audio first (unknown durations estimated from
        the size)."""
        order = (
            [func.coalesce(Job.duration, Job.size / BYTES_PER_SECOND).desc(), Job.id]
            if longest
            else [Job.id]
        )
        picked = self._ready(now).order_by(None).order_by(*order)
        skipped = list(exclude)
        if skipped:
            picked = picked.where(Job.id.notin_(skipped))
        ids = picked.limit(limit).subquery()
        stmt = select(JOBS).join(ids, Job.id == ids.c.id).order_by(*order)
        with self.engine.connect() as conn:
            return [from_row(r) for r in conn.execute(stmt)]

    def superseded_outputs(self, path: str, job_id: int) -> set[str]:
        """Outputs of the jobs that job ``job_id`` superseded at ``path`` (it replaces them)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Job.outputs).where(
                    Job.path == path, Job.id < job_id, Job.status == JobStatus.SUPERSEDED
                )
            ).scalars()
            return {p for outs in rows for p in (outs or [])}

    def outputs_in_use(self, but: int | None = None) -> set[str]:
        """Every output path recorded by any job (so writers never clobber another job's file),
        or by any job but job ``but``."""
        query = select(Job.outputs) if but is None else select(Job.outputs).where(Job.id != but)
        with self.engine.connect() as conn:
            rows = conn.execute(query).scalars().all()
        return {p for outs in rows for p in (outs or [])}

    # ------------------------------------------------------------------ intake
    def enqueue(
        self,
        path: str,
        sha256: str,
        size: int,
        now: datetime,
        options: JobOptions | None = None,
        duration: float | None = None,
        facts: AudioFacts | None = None,
        origin: str | None = None,
    ) -> Enqueued:
        """Register a file (``origin``: where it came from, see :attr:`JobRecord.origin`).
        Same path and content as a live job: nothing new (however many intakes see it at once:
        the database's unique index decides, not a look-up first).  New content at a known
        path: the path's older jobs are superseded by this one (their announcements not
        delivered yet are dropped).  Same content elsewhere: a duplicate, served from its
        original's cached steps."""
        with self.engine.begin() as conn:
            original = conn.execute(
                select(Job.id)
                .where(Job.sha256 == sha256, Job.duplicate_of.is_(None), Job.path != path)
                .order_by(Job.id)
            ).first()
            dup = original[0] if original else None
            job_id = _insert(
                conn,
                now,
                unique=True,
                path=path,
                sha256=sha256,
                size=size,
                duration=duration,
                facts=facts.to_dict() if facts is not None else None,
                status=JobStatus.QUEUED,
                duplicate_of=dup,
                options=(options or JobOptions()).to_dict(),
                origin=origin,
            )
            if job_id is None:
                same = conn.execute(
                    select(Job.id).where(
                        Job.path == path, Job.sha256 == sha256, Job.status != JobStatus.SUPERSEDED
                    )
                ).scalar_one()
                return Enqueued(job_id=same, created=False)
            superseded = _supersede(conn, path, job_id, now)
            # their ends that nobody was told of yet are never told: this job's end is
            reason = f"not delivered: the job was superseded by #{job_id} first"
            self.outbox.drop(conn, superseded, reason, now)
        log.info(
            "enqueued job %s",
            job_id,
            extra={"job": job_id, "path": path, "duplicate_of": dup, "superseded": superseded},
        )
        return Enqueued(job_id=job_id, created=True, duplicate_of=dup, superseded=superseded)

    def reject(self, path: str, size: int, reason: str, now: datetime) -> Enqueued:
        """A file refused at intake (unreadable, a symlink leading out of the watched folders):
        a failed job with ``reason``, recorded (and announced) once per path and reason."""
        with self.engine.begin() as conn:
            same = conn.execute(
                select(Job.id).where(
                    Job.path == path,
                    Job.sha256 == UNREAD,
                    Job.status == JobStatus.FAILED,
                    Job.error == reason,
                )
            ).first()
            if same is not None:
                return Enqueued(job_id=same[0], created=False)
            job_id = _insert(
                conn,
                now,
                unique=False,
                path=path,
                sha256=UNREAD,
                size=size,
                status=JobStatus.FAILED,
                options={},
                error=reason,
                finished_at=now,
            )
            row = conn.execute(select(JOBS).where(Job.id == job_id)).one()
            self._announce(conn, from_row(row), "failed", now)  # failed for good, too
        log.warning(
            "refused %s: %s", path, reason, extra={"job": job_id, "path": path, "error": reason}
        )
        return Enqueued(job_id=job_id, created=True)

    # ------------------------------------------------------------------ users
    def requeue(
        self, job_ids: Iterable[int] = (), *, failed: bool = False, now: datetime
    ) -> Requeued:
        """Done or failed jobs go back to queued with a fresh attempt count, on any device
        again (a move to the CPU after running out of GPU memory is forgotten)."""
        out = Requeued()
        ids = list(job_ids)
        if failed:
            ids += [j.id for j in self.jobs([JobStatus.FAILED])]
        fresh = {"status": JobStatus.QUEUED, "attempts": 0, "error": None, "progress": 0.0}
        fresh |= {"run_after": None, "finished_at": None, "updated_at": now}
        for job_id in dict.fromkeys(ids):
            job = self.get(job_id)
            why = why_not_requeued(job)
            if job is None or why is not None:
                out.skipped[job_id] = why or "no such job"
            elif self._update(
                and_(Job.id == job_id, Job.status == job.status),
                fresh | {"options": dataclasses.replace(job.options, oom_device=None).to_dict()},
            ):
                out.requeued.append(job_id)
            else:
                out.skipped[job_id] = "job changed state meanwhile"
        return out

    def cancel_job(self, job_id: int, now: datetime, reason: str) -> bool:
        """A person stops a queued or running job: cancelled at once, with ``reason``; a
        running one's worker loses its lease at its next heartbeat, stops at its next
        checkpoint and publishes nothing (its finished steps stay cached).  False when the
        job had ended already."""
        live = (JobStatus.QUEUED, JobStatus.RUNNING)
        values = off_lease(now, status=JobStatus.CANCELLED, error=reason, finished_at=now)
        return self._update(and_(Job.id == job_id, Job.status.in_(live)), values)

    def rewrite_done(
        self,
        job_id: int,
        now: datetime,
        options: JobOptions,
        outputs: Sequence[str],
        metrics: dict[str, Any] | None = None,
    ) -> bool:
        """A done job's options, outputs (and metrics) after its files were re-rendered
        (renamed or relabelled speakers)."""
        values: dict[str, Any] = {
            "options": options.to_dict(),
            "outputs": list(outputs),
            "updated_at": now,
        }
        if metrics is not None:
            values["metrics"] = metrics
        return self._update(and_(Job.id == job_id, Job.status == JobStatus.DONE), values)
