"""A job row as the store reads and writes it: the jobs table, the record a row becomes, the
statuses a job ends in, and the values of a job leaving its worker's lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from daemon.jobs import AudioFacts, JobOptions, JobRecord, JobStatus
from daemon.models import Job

TERMINAL = (JobStatus.DONE, JobStatus.FAILED, JobStatus.SUPERSEDED, JobStatus.CANCELLED)
JOBS = Job.__table__


def from_row(row: Any) -> JobRecord:
    m = row._mapping
    values = {f: m[f] for f in JobRecord.__dataclass_fields__}
    values["status"] = JobStatus(values["status"])
    values["options"] = JobOptions.from_dict(values["options"])
    values["outputs"] = list(values["outputs"] or [])
    values["metrics"] = dict(values["metrics"] or {})
    values["facts"] = AudioFacts.from_dict(values["facts"])
    return JobRecord(**values)


def off_lease(now: datetime, **values: Any) -> dict[str, Any]:
    """The values of a job leaving its worker's lease, then ``values``."""
    return {"lease_owner": None, "lease_expires_at": None, "updated_at": now, **values}
