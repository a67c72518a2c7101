"""What ``transcribd status`` and ``nodes`` show: the jobs with their elapsed time, ETA and
announcements, the plan in force and every node using the database.  Both only read: a
database that does not exist yet, or is at another schema, is said so, never created or
migrated."""

from __future__ import annotations

import dataclasses
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.config import Config
from daemon.errors import UserError
from daemon.hooks import DeliveryRecord
from daemon.jobs import JobRecord, JobStatus
from daemon.nodes import DAEMON_KEY, PLAN_KEY, NodeView, daemon_line, node_views, this_node
from daemon.rows import TERMINAL
from daemon.store import Store, open_store


@dataclass(frozen=True)
class JobView:
    job: JobRecord
    elapsed: float | None
    eta: float | None
    hooks: list[DeliveryRecord] = dataclasses.field(default_factory=list)
    """The announcements of the job's ends (hook commands, webhook) and how they went."""

    def as_dict(self) -> dict[str, Any]:
        extra = {"elapsed": self.elapsed, "eta": self.eta}
        return {**self.job.as_dict(), **extra, "hooks": [d.as_dict() for d in self.hooks]}


def view(job: JobRecord, now: datetime) -> JobView:
    """Elapsed and ETA (pure): ETA extrapolates the running job's progress rate."""
    if job.started_at is None:
        return JobView(job, None, None)
    end = job.finished_at if job.status in TERMINAL else now
    elapsed = max(0.0, ((end or now) - job.started_at).total_seconds())
    eta = None
    if job.status is JobStatus.RUNNING and job.progress >= 0.02:
        eta = elapsed * (1 - job.progress) / job.progress
    return JobView(job, round(elapsed, 1), None if eta is None else round(eta, 1))


@dataclass(frozen=True)
class StatusReport:
    jobs: list[JobView]
    plan: dict[str, Any] | None
    """The plan this node's daemon last published (profile, workers, threads, reason)."""
    plan_at: datetime | None
    daemon: str
    """Whether this node's daemon uses this database: one line."""
    missing_folders: list[str]
    """Watched folders this node's running daemon cannot find."""
    nodes: list[NodeView] = dataclasses.field(default_factory=list)
    """Every node that has used this database."""
    node: str = ""
    """This machine's node name."""

    @property
    def fleet(self) -> bool:
        """Whether nodes other than this one use the database (then each is shown)."""
        return any(n.node != self.node for n in self.nodes)


def status(config: Config, job_id: int | None = None) -> StatusReport:
    with closing(open_store(config, read_only=True)) as store:
        now = store.now()
        nodes = _nodes(store, now, config)
        line = daemon_line(nodes, config)
        here = this_node(nodes, config.daemon.node)
        plan, plan_at = (here.plan, here.plan_at) if here else (None, None)
        missing = here.missing_folders if here else []
        if job_id is not None:
            job = store.get(job_id)
            if job is None:
                raise UserError(f"no job #{job_id}")
            records = [job]
        else:
            records = store.jobs()
        announced = store.outbox.of_jobs(job_id)
        jobs = [dataclasses.replace(view(j, now), hooks=announced.get(j.id, [])) for j in records]
        node = here.node if here is not None else config.daemon.node
        return StatusReport(jobs, plan, plan_at, line, missing, nodes, node)


def nodes(config: Config) -> list[NodeView]:
    """Every node that has used the database: alive or when last seen, host, pid, plan."""
    with closing(open_store(config, read_only=True)) as store:
        return _nodes(store, store.now(), config)


def _nodes(store: Store, now: datetime, config: Config) -> list[NodeView]:
    results = store.results
    return node_views(results.states(DAEMON_KEY), results.states(PLAN_KEY), now, config)
