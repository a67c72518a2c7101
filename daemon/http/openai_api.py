"""OpenAI's audio API: ``POST /v1/audio/transcriptions``, ``/v1/audio/translations`` and
``GET /v1/models``, as the official clients, Open WebUI, n8n or Speakr call them.

``model`` names a profile (fast, balanced, quality), or anything clients hard-code (whisper-1,
gpt-4o-transcribe, gpt-4o-mini-transcribe, gpt-4o-transcribe-diarize, auto): then the planner
chooses, as for a watched folder's file.  ``diarized_json`` carries transcribd's speakers: an
enrolled voice's name, a request's known speaker whose clip matched, else A, B, ...
``temperature`` and ``chunking_strategy`` are accepted and not used (transcribd decodes without
temperature fallback and cuts at silences itself); parameters OpenAI does not know are ignored,
as OpenAI does.  ``stream=true`` answers Server-Sent Events: the job's progress as comments
while it runs, then the text (``transcript.text.delta``, and ``transcript.text.segment`` for
``diarized_json``) and ``transcript.text.done``: speakers are known only once the whole file
is diarized, so no text comes before the job is done.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from daemon.config import PROFILE_NAMES, language_problem
from daemon.http import auth, intake, results, shapes, upload
from daemon.http.context import POLL_SECONDS, Context, Gone
from daemon.http.errors import ApiError
from daemon.http.upload import Form
from daemon.jobs import JobOptions, JobRecord
from daemon.publish import cue_rules
from daemon.rows import TERMINAL

router = APIRouter()

CLIENT_MODELS = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "auto",
)
"""Model names clients hard-code: each means "the planner chooses"."""
UPLOAD_FORM = upload.openapi_form(
    ["file", "model"],
    ["file"],
    {
        "model": {"type": "string", "enum": [*CLIENT_MODELS, *PROFILE_NAMES]},
        "language": {"type": "string", "description": "ISO 639-1 code"},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(shapes.OPENAI_FORMATS)},
        "temperature": {"type": "number"},
        "timestamp_granularities[]": {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
        },
        "known_speaker_names[]": {"type": "array", "items": {"type": "string"}},
        "known_speaker_references[]": {
            "type": "array",
            "items": {"type": "string", "description": "a data URL"},
        },
        "stream": {"type": "boolean"},
        "chunking_strategy": {"type": "string"},
    },
)


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


@router.get("/v1/models", tags=["OpenAI"])
async def models(request: Request, _caller: auth.Caller) -> dict[str, Any]:
    """What ``model`` may be: the names clients hard-code, and the profiles."""
    names = [*CLIENT_MODELS, *PROFILE_NAMES]
    return {
        "object": "list",
        "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "transcribd"} for n in names
        ],
    }


@router.post("/v1/audio/transcriptions", tags=["OpenAI"], openapi_extra=UPLOAD_FORM)
async def transcriptions(request: Request, caller: auth.Caller) -> Response:
    """Transcribe the uploaded audio (a durable job; asking again returns it)."""
    return await _audio(request, caller, "transcribe")


@router.post("/v1/audio/translations", tags=["OpenAI"], openapi_extra=UPLOAD_FORM)
async def translations(request: Request, caller: auth.Caller) -> Response:
    """Translate the uploaded audio into English (Whisper's translate task)."""
    return await _audio(request, caller, "translate")


async def _audio(request: Request, caller: str, task: str) -> Response:
    ctx = _ctx(request)
    async with ctx.gate():
        form = await intake.receive(ctx, request)
        try:
            fmt, options, words, segments, stream = _options(ctx, form, task)
        except ApiError:
            form.discard()
            raise
        job = await intake.job_of(ctx, form, "file", options, auth.origin(caller))
        if stream:
            return StreamingResponse(_events(ctx, job, fmt, task), media_type="text/event-stream")
        try:
            ended = await ctx.until_ended(job.id, request.is_disconnected)
        except Gone:
            return Response(status_code=499)
        return await _answer(ctx, ended, fmt, task, words, segments)


def _options(ctx: Context, form: Form, task: str) -> tuple[str, JobOptions, bool, bool, bool]:
    """(response format, the job's options, words?, segments?, stream?) from the form."""
    model = (form.value("model") or "").strip()
    if not model:
        raise ApiError(400, "'model' is required (see GET /v1/models)", "model")
    if model not in CLIENT_MODELS and model not in PROFILE_NAMES:
        known = ", ".join((*CLIENT_MODELS, *PROFILE_NAMES))
        raise ApiError(400, f"unknown model '{model}' (known: {known})", "model", "model_not_found")
    fmt = (form.value("response_format") or "json").strip()
    if fmt not in shapes.OPENAI_FORMATS:
        known = ", ".join(shapes.OPENAI_FORMATS)
        raise ApiError(400, f"unknown response_format '{fmt}' (known: {known})", "response_format")
    language = (form.value("language") or "").strip().lower() or None
    if language is not None and (problem := language_problem(language)):
        raise ApiError(400, problem, "language")
    granularity = set(form.values("timestamp_granularities"))
    if granularity - {"word", "segment"}:
        raise ApiError(
            400, "timestamp_granularities[]: word or segment", "timestamp_granularities[]"
        )
    temperature = form.value("temperature")
    if temperature is not None:
        try:
            float(temperature)
        except ValueError:
            raise ApiError(400, "temperature: a number from 0 to 1", "temperature") from None
    speakers = intake.references(
        ctx, form.values("known_speaker_names"), form.values("known_speaker_references")
    )
    options = JobOptions(
        profile=model if model in PROFILE_NAMES else None,
        language=language,
        initial_prompt=form.value("prompt") or None,
        task=None if task == "transcribe" else task,
        known_speakers=speakers,
    )
    stream = (form.value("stream") or "").strip().lower() in ("true", "1", "yes")
    words = "word" in granularity
    return fmt, options, words, "segment" in granularity or not words, stream


async def _answer(
    ctx: Context, job: JobRecord, fmt: str, task: str, words: bool, segments: bool
) -> Response:
    text, names = await results.transcript(ctx, job)
    answer = shapes.openai(text, names, fmt, task, words, segments, cue_rules(ctx.config))
    if isinstance(answer.body, dict):
        return JSONResponse(answer.body)
    return PlainTextResponse(answer.body, media_type=answer.media_type)


async def _events(ctx: Context, job: JobRecord, fmt: str, task: str) -> AsyncIterator[str]:
    """Server-Sent Events: the job's progress as comments while it runs (when it changes, and
    every 10 s to keep the connection), then its text, or an error event."""
    pause, said, last = POLL_SECONDS[0], -1.0, time.monotonic()
    while True:
        current = await run_in_threadpool(ctx.store.get, job.id)
        if current is None or current.status in TERMINAL:
            break
        if current.progress != said or time.monotonic() - last > 10:
            said, last = current.progress, time.monotonic()
            yield f": progress {current.progress:.0%}\n\n"
        if ctx.stopping.is_set():
            yield _event({"type": "error", "error": {"message": "the server is stopping"}})
            return
        await asyncio.sleep(pause)
        pause = min(POLL_SECONDS[1], pause * 1.5)
    try:
        text, names = await results.transcript(ctx, current or job)
    except ApiError as exc:
        yield _event({"type": "error", "error": {"message": exc.message, "code": exc.code}})
        return
    shape = "diarized_json" if fmt == "diarized_json" else "json"
    answer = shapes.openai(text, names, shape, task)
    assert isinstance(answer.body, dict)
    for segment in answer.body.get("segments", []):
        yield _event(segment)
    for i, segment in enumerate(text.segments):
        delta = segment.text if i == 0 else " " + segment.text
        yield _event({"type": "transcript.text.delta", "delta": delta})
    yield _event({"type": "transcript.text.done", "text": shapes.text_of(text)})


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
