"""One job by its id, for the HTTP face and the pages: its view (as ``status --json`` shows it),
its transcript, and a person's requeue or cancel.  Each takes the store its caller holds (a
server keeps one open); nothing here prints or knows HTTP."""

from __future__ import annotations

from collections.abc import Iterable

from daemon.app.status import JobView, view
from daemon.errors import UserError
from daemon.jobs import JobRecord, JobStatus, Requeued
from daemon.store import Store


def job(store: Store, job_id: int) -> JobRecord:
    """The job (:class:`UserError` when there is none)."""
    found = store.get(job_id)
    if found is None:
        raise UserError(f"no job #{job_id}")
    return found


def view_of(store: Store, job_id: int) -> JobView:
    """The job with its elapsed time, ETA and announcements."""
    record = job(store, job_id)
    announced = store.outbox.of_jobs(job_id).get(job_id, [])
    return JobView(record, *_times(record, store), hooks=announced)


def _times(record: JobRecord, store: Store) -> tuple[float | None, float | None]:
    shown = view(record, store.now())
    return shown.elapsed, shown.eta


def views(
    store: Store, statuses: Iterable[JobStatus] | None = None, limit: int = 200
) -> list[JobView]:
    """The newest ``limit`` jobs (of ``statuses``), newest first."""
    now = store.now()
    records = store.jobs(statuses)[-limit:]
    return [view(r, now) for r in reversed(records)]


def requeue(store: Store, job_id: int) -> Requeued:
    return store.requeue([job_id], now=store.now())


def cancel(store: Store, job_id: int, who: str) -> bool:
    """Stop a queued or running job (``who``: named in its error); False when it had ended."""
    job(store, job_id)
    return store.cancel_job(job_id, store.now(), f"cancelled by {who}")
