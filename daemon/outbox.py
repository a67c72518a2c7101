"""The announcements of jobs' ends (hook commands, the webhook), kept in the database until
delivered: written by :class:`daemon.store.Store` in the same transaction as a job's final
state, claimed under a lease by whichever node delivers them (:mod:`daemon.delivery`), so that
a restart loses none and repeats none that was recorded delivered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update

from daemon import db
from daemon.hooks import DeliveryRecord, DeliveryStatus
from daemon.models import Delivery

DELIVERIES = Delivery.__table__


def _from_row(row: Any) -> DeliveryRecord:
    m = row._mapping
    values = {f: m[f] for f in DeliveryRecord.__dataclass_fields__}
    values["status"] = DeliveryStatus(values["status"])
    return DeliveryRecord(**values)


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        conn: Any,
        job_id: int,
        run: int,
        kinds: Sequence[str],
        event: str,
        payload: dict[str, Any],
        now: datetime,
        due: datetime | None = None,
    ) -> None:
        """Announcements of one end of a job, in the caller's transaction; one per (job, run,
        kind) however often this is called.  They are due at ``due`` (default: ``now``)."""
        rows = [
            {
                "job_id": job_id,
                "run": run,
                "kind": kind,
                "event": event,
                "payload": payload,
                "status": DeliveryStatus.PENDING,
                "tries": 0,
                "next_at": due or now,
                "created_at": now,
                "updated_at": now,
            }
            for kind in kinds
        ]
        conn.execute(db.insert(conn)(Delivery).values(rows).on_conflict_do_nothing())

    def drop(self, conn: Any, job_ids: Sequence[int], reason: str, now: datetime) -> int:
        """The pending announcements of jobs ``job_ids`` are never to be delivered (their jobs
        were superseded), in the caller's transaction; how many.  A try under way when this
        happens is not recorded (:meth:`delivered` and the others find nothing pending)."""
        if not job_ids:
            return 0
        stmt = (
            update(Delivery)
            .where(Delivery.job_id.in_(list(job_ids)), Delivery.status == DeliveryStatus.PENDING)
            .values(
                status=DeliveryStatus.DROPPED,
                result=reason[:500],
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        return int(conn.execute(stmt).rowcount)

    def claim(
        self,
        owner: str,
        now: datetime,
        lease_seconds: float,
        kinds: Sequence[str] = ("on_done", "on_failed", "webhook"),
        limit: int = 1,
    ) -> list[DeliveryRecord]:
        """Take up to ``limit`` due announcements of ``kinds`` for one try each (the try is
        counted now: a try that dies with its daemon counts).  A lease that ran out (its node
        died mid-try) makes the announcement due again."""
        due = and_(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.kind.in_(list(kinds)),
            Delivery.next_at <= now,
            or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at < now),
        )
        picked = (
            select(Delivery.id)
            .where(due)
            .order_by(Delivery.next_at, Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        stmt = (
            update(Delivery)
            .where(Delivery.id.in_(select(picked.c.id)), due)
            .values(
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                tries=Delivery.tries + 1,
                updated_at=now,
            )
            .returning(*DELIVERIES.c)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((_from_row(r) for r in rows), key=lambda d: d.id)

    def delivered(self, d: DeliveryRecord, owner: str, now: datetime, result: str) -> bool:
        return self._settle(d, owner, now, result, DeliveryStatus.DELIVERED, d.next_at)

    def again(
        self, d: DeliveryRecord, owner: str, now: datetime, result: str, at: datetime
    ) -> bool:
        """A failed try: due again ``at``."""
        return self._settle(d, owner, now, result, DeliveryStatus.PENDING, at)

    def give_up(self, d: DeliveryRecord, owner: str, now: datetime, result: str) -> bool:
        return self._settle(d, owner, now, result, DeliveryStatus.FAILED, d.next_at)

    def _settle(
        self,
        d: DeliveryRecord,
        owner: str,
        now: datetime,
        result: str,
        status: DeliveryStatus,
        next_at: datetime,
    ) -> bool:
        """Record a try's outcome, if the try is still this owner's (else another node took
        it over after this lease ran out, and its outcome counts)."""
        mine = and_(
            Delivery.id == d.id,
            Delivery.lease_owner == owner,
            Delivery.status == DeliveryStatus.PENDING,
        )
        values = {
            "status": status,
            "result": result[:500],
            "next_at": next_at,
            "lease_owner": None,
            "lease_expires_at": None,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            return conn.execute(update(Delivery).where(mine).values(**values)).rowcount == 1

    def of_jobs(self, job_id: int | None = None) -> dict[int, list[DeliveryRecord]]:
        """The announcements of one job's ends (None: of every job's), oldest first, by job."""
        query = select(DELIVERIES).order_by(Delivery.job_id, Delivery.run, Delivery.id)
        if job_id is not None:
            query = query.where(Delivery.job_id == job_id)
        out: dict[int, list[DeliveryRecord]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                out.setdefault(row.job_id, []).append(_from_row(row))
        return out

    def next_due(self) -> datetime | None:
        """When the earliest pending announcement is due (None: none is pending)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.min(Delivery.next_at)).where(Delivery.status == DeliveryStatus.PENDING)
            ).scalar_one_or_none()
