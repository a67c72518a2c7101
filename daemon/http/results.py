"""What a request gets once its job has ended: the transcript it stored (with its speakers'
names), or the job's error as the status code its API's clients expect."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from daemon.http.context import Context
from daemon.http.errors import ApiError
from daemon.jobs import JobRecord, JobStatus
from daemon.pipeline.outputs import Transcript, from_record

BAD_INPUT = ("bad_input", "input_missing")
"""Failure classes (:func:`daemon.retry.failure_class`) that are the request's fault: 400."""


def failed(job: JobRecord) -> ApiError:
    """A job that did not end done, as an error: the same one-line reason ``status`` shows,
    400 where the audio is to blame, else 500 (409 for a superseded or cancelled job)."""
    reason = job.error or job.status.value
    if job.status in (JobStatus.CANCELLED, JobStatus.SUPERSEDED):
        return ApiError(409, f"job {job.id} was {job.status.value}: {reason}")
    failure = job.metrics.get("failure")
    if job.sha256 == "" or failure in BAD_INPUT:
        return ApiError(400, reason, param="file", code="invalid_audio")
    return ApiError(500, f"job {job.id} failed: {reason}")


async def transcript(ctx: Context, job: JobRecord) -> tuple[Transcript, dict[str, str]]:
    """A done job's transcript and its speakers' names (:class:`ApiError` otherwise)."""
    if job.status is not JobStatus.DONE:
        raise failed(job)
    stored = await run_in_threadpool(ctx.store.transcripts.get, job.id)
    if stored is not None:
        return from_record(stored.record), stored.names
    # a job done before transcripts were kept in the database: its JSON output, if still there
    for output in job.outputs:
        if output.endswith(".json") and Path(output).is_file():
            record = json.loads(Path(output).read_text(encoding="utf-8"))
            return from_record(record), {}
    raise ApiError(500, f"job {job.id} is done but its transcript is not kept; requeue it")
