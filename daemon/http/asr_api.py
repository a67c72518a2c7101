"""whisper-asr-webservice's API: ``POST /asr`` and ``POST /detect-language``, as Bazarr's
Whisper provider, subgen and many scripts call them: the options as query parameters, the audio
as the form field ``audio_file``; ``encode=false`` means raw 16 kHz mono s16le PCM (what Bazarr
sends).  Speakers appear in the answer only with ``diarize=true`` (a subtitle provider wants
plain cues); ``vad_filter`` is accepted and not needed (transcribd always listens for speech
first); ``word_timestamps`` adds words to ``output=json``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from daemon import languages
from daemon.config import language_problem
from daemon.http import auth, intake, results, shapes, upload
from daemon.http.context import Context, Gone
from daemon.http.errors import ApiError
from daemon.jobs import JobOptions
from daemon.pipeline.outputs import Transcript

router = APIRouter()

AUDIO_FORM = upload.openapi_form(["audio_file"], ["audio_file"], {})


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def _language(language: str | None) -> str | None:
    if language is None or not language.strip():
        return None
    code = languages.code(language) or language.strip().lower()
    if problem := language_problem(code):
        raise ApiError(400, problem, "language")
    return code


@router.post("/asr", tags=["whisper-asr-webservice"], openapi_extra=AUDIO_FORM)
async def asr(
    request: Request,
    caller: auth.Caller,
    encode: Annotated[bool, Query(description="false: raw 16 kHz mono s16le PCM")] = True,
    task: Annotated[str, Query(pattern="^(transcribe|translate)$")] = "transcribe",
    language: Annotated[str | None, Query(description="ISO code or name; none: detected")] = None,
    initial_prompt: Annotated[str | None, Query()] = None,
    vad_filter: Annotated[
        bool, Query(description="accepted; speech is always found first")
    ] = False,
    word_timestamps: Annotated[bool, Query(description="words in output=json")] = False,
    output: Annotated[str, Query(pattern="^(txt|vtt|srt|tsv|json)$")] = "txt",
    diarize: Annotated[bool, Query(description="name the speakers in the answer")] = False,
    min_speakers: Annotated[int | None, Query(ge=1)] = None,
    max_speakers: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Transcribe (or translate into English) the uploaded audio: a durable job."""
    ctx = _ctx(request)
    options = JobOptions(
        language=_language(language),
        initial_prompt=initial_prompt or None,
        task=None if task == "transcribe" else task,
        min_speakers=min_speakers,
        max_speakers=max_speakers,
    )
    async with ctx.gate():
        form = await intake.receive(ctx, request)
        job = await intake.job_of(ctx, form, "audio_file", options, auth.origin(caller), not encode)
        try:
            ended = await ctx.until_ended(job.id, request.is_disconnected)
        except Gone:
            return Response(status_code=499)
        text, names = await results.transcript(ctx, ended)
    if not diarize:
        text, names = _without_speakers(text), {}
    answer = shapes.asr(text, names, output, word_timestamps)
    name = quote(f"{job.name}.{output}")
    headers = {
        "Asr-Engine": "transcribd",
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
    }
    if isinstance(answer.body, dict):
        return JSONResponse(answer.body, headers=headers)
    return PlainTextResponse(answer.body, media_type=answer.media_type, headers=headers)


@router.post("/detect-language", tags=["whisper-asr-webservice"], openapi_extra=AUDIO_FORM)
async def detect_language(
    request: Request,
    caller: auth.Caller,
    encode: Annotated[bool, Query(description="false: raw 16 kHz mono s16le PCM")] = True,
) -> dict[str, Any]:
    """The language spoken (a job of its own: only the language step runs, and is cached for
    the transcription that usually follows)."""
    ctx = _ctx(request)
    async with ctx.gate():
        form = await intake.receive(ctx, request)
        options = JobOptions(task="language")
        job = await intake.job_of(ctx, form, "audio_file", options, auth.origin(caller), not encode)
        try:
            ended = await ctx.until_ended(job.id, request.is_disconnected)
        except Gone:
            raise ApiError(499, "the client went away") from None
        text, _names = await results.transcript(ctx, ended)
    found = ended.metrics.get("language") or {}
    code = str(found.get("code") or text.language)
    if not code:
        raise ApiError(400, "no speech was heard: there is no language to detect", "audio_file")
    return {
        "detected_language": languages.name(code),
        "language_code": code,
        "confidence": round(float(found.get("probability", 0.0)), 4),
    }


def _without_speakers(t: Transcript) -> Transcript:
    return dataclasses.replace(
        t, segments=tuple(dataclasses.replace(s, speaker=None) for s in t.segments)
    )
