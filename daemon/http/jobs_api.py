"""The jobs API, for programs that should not hold a connection while a file is transcribed:
``POST /v1/jobs`` (an upload and the options of ``transcribd add``) answers 202 with the job;
then ``GET /v1/jobs/{id}`` (the fields of ``status --json``), ``.../events`` (progress as
Server-Sent Events until it ends), ``.../transcript.{txt,srt,vtt,json,rttm}``, ``POST
.../requeue`` and ``DELETE`` (cancel)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from daemon.app import control
from daemon.config import PROFILE_NAMES, language_problem
from daemon.config.schema import OUTPUT_FORMATS
from daemon.errors import UserError
from daemon.http import auth, intake, results, upload
from daemon.http.context import POLL_SECONDS, Context
from daemon.http.errors import ApiError
from daemon.http.upload import Form
from daemon.jobs import JobOptions, JobStatus
from daemon.pipeline.outputs import rename_speakers, render
from daemon.publish import cue_rules
from daemon.rows import TERMINAL

router = APIRouter()

MEDIA = {
    "txt": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "rttm": "text/plain; charset=utf-8",
}
JOB_FORM = upload.openapi_form(
    ["file"],
    ["file"],
    {
        "profile": {"type": "string", "enum": list(PROFILE_NAMES)},
        "language": {"type": "string"},
        "num_speakers": {"type": "integer", "minimum": 1},
        "min_speakers": {"type": "integer", "minimum": 1},
        "max_speakers": {"type": "integer", "minimum": 1},
        "prompt": {"type": "string"},
        "hotwords": {"type": "string"},
        "task": {"type": "string", "enum": ["transcribe", "translate"]},
    },
)


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except UserError as exc:
        raise ApiError(404 if str(exc).startswith("no job") else 400, str(exc)) from None


@router.post("/v1/jobs", tags=["Jobs"], status_code=202, openapi_extra=JOB_FORM)
async def submit(request: Request, caller: auth.Caller) -> JSONResponse:
    """Upload a file as a job; answers at once (202) with the job."""
    ctx = _ctx(request)
    form = await intake.receive(ctx, request)
    try:
        options = _options(form)
    except ApiError:
        form.discard()
        raise
    job = await intake.job_of(ctx, form, "file", options, auth.origin(caller))
    shown = await _call(control.view_of, ctx.store, job.id)
    return JSONResponse(
        shown.as_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


def _options(form: Form) -> JobOptions:
    """The options of ``transcribd add``, from the form (400 naming a bad one)."""
    profile = form.value("profile") or None
    if profile is not None and profile not in PROFILE_NAMES:
        raise ApiError(400, f"unknown profile '{profile}' (known: {', '.join(PROFILE_NAMES)})")
    language = form.value("language") or None
    if language is not None and (problem := language_problem(language)):
        raise ApiError(400, problem, "language")
    counts = [_count(form, n) for n in ("num_speakers", "min_speakers", "max_speakers")]
    task = form.value("task") or "transcribe"
    if task not in ("transcribe", "translate"):
        raise ApiError(400, "task: transcribe or translate", "task")
    return JobOptions(
        profile=profile,
        language=language,
        initial_prompt=form.value("prompt") or None,
        hotwords=form.value("hotwords") or None,
        task=None if task == "transcribe" else task,
        num_speakers=counts[0],
        min_speakers=counts[1],
        max_speakers=counts[2],
    )


def _count(form: Form, name: str) -> int | None:
    raw = form.value(name)
    if raw is None or not raw.strip():
        return None
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ApiError(400, f"{name}: a whole number of at least 1", name)
    return int(raw)


@router.get("/v1/jobs", tags=["Jobs"])
async def listing(
    request: Request,
    _caller: auth.Caller,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The newest jobs (of one status), newest first."""
    ctx = _ctx(request)
    statuses = None if status is None else [status]
    shown = await _call(control.views, ctx.store, statuses, limit)
    return [v.as_dict() for v in shown]


@router.get("/v1/jobs/{job_id}", tags=["Jobs"])
async def one(request: Request, job_id: int, _caller: auth.Caller) -> Any:
    """The job, as ``transcribd status --json`` shows it."""
    shown = await _call(control.view_of, _ctx(request).store, job_id)
    return shown.as_dict()


@router.get("/v1/jobs/{job_id}/transcript.{fmt}", tags=["Jobs"])
async def transcript(
    request: Request, job_id: int, fmt: str, _caller: auth.Caller
) -> PlainTextResponse:
    """The done job's transcript in one of its formats, speakers by name."""
    if fmt not in OUTPUT_FORMATS:
        raise ApiError(404, f"no format '{fmt}' (known: {', '.join(OUTPUT_FORMATS)})")
    ctx = _ctx(request)
    job = await _call(control.job, ctx.store, job_id)
    if job.status is not JobStatus.DONE:
        raise ApiError(409, f"job {job_id} is {job.status.value}, not done")
    text, names = await results.transcript(ctx, job)
    rendered = render(rename_speakers(text, names), fmt, False, cue_rules(ctx.config))
    return PlainTextResponse(rendered, media_type=MEDIA[fmt])


@router.post("/v1/jobs/{job_id}/requeue", tags=["Jobs"])
async def requeue(request: Request, job_id: int, _caller: auth.Caller) -> Any:
    """Put a done or failed job back in the queue."""
    ctx = _ctx(request)
    await _call(control.job, ctx.store, job_id)
    done = await _call(control.requeue, ctx.store, job_id)
    if job_id not in done.requeued:
        raise ApiError(409, f"job {job_id} not requeued: {done.skipped.get(job_id, '')}")
    return (await _call(control.view_of, ctx.store, job_id)).as_dict()


@router.delete("/v1/jobs/{job_id}", tags=["Jobs"])
async def cancel(request: Request, job_id: int, caller: auth.Caller) -> Any:
    """Cancel a queued or running job (its finished steps stay cached)."""
    ctx = _ctx(request)
    if not await _call(control.cancel, ctx.store, job_id, auth.origin(caller)):
        job = await _call(control.job, ctx.store, job_id)
        raise ApiError(409, f"job {job_id} has ended ({job.status.value})")
    return (await _call(control.view_of, ctx.store, job_id)).as_dict()


@router.get("/v1/jobs/{job_id}/events", tags=["Jobs"])
async def events(request: Request, job_id: int, _caller: auth.Caller) -> StreamingResponse:
    """The job's progress as Server-Sent Events (``event: progress``), until it ends
    (``event: end`` with the job)."""
    ctx = _ctx(request)
    await _call(control.job, ctx.store, job_id)
    return StreamingResponse(_progress(ctx, request, job_id), media_type="text/event-stream")


async def _progress(ctx: Context, request: Request, job_id: int) -> AsyncIterator[str]:
    pause, said, last = POLL_SECONDS[0], None, time.monotonic()
    while not ctx.stopping.is_set() and not await request.is_disconnected():
        shown = await run_in_threadpool(control.view_of, ctx.store, job_id)
        data = shown.as_dict()
        if shown.job.status in TERMINAL:
            yield f"event: end\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            return
        state = (data["status"], data["progress"])
        if state != said or time.monotonic() - last > 15:
            said, last = state, time.monotonic()
            yield f"event: progress\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
        await asyncio.sleep(pause)
        pause = min(POLL_SECONDS[1] * 2, pause * 1.5)
