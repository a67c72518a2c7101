"""A request's upload, turned into a job and waited for: what every transcription route does
before it shapes the answer (:func:`receive` the form, :func:`job_of` the audio, then
:meth:`Context.until_ended`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from daemon.app import uploads
from daemon.errors import UserError
from daemon.http import upload
from daemon.http.context import Context
from daemon.http.errors import ApiError
from daemon.jobs import JobOptions, JobRecord


async def receive(ctx: Context, request: Request) -> upload.Form:
    """The request's multipart form, its files in ``upload_dir`` (413 as the body passes
    ``max_upload_mb``, 408 for a client that stalls, 400 for a body that is no such form)."""
    limit = ctx.config.http.max_upload_mb << 20
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the upload is larger than {ctx.config.http.max_upload_mb} MB")
    try:
        return await upload.receive(
            request.headers.get("content-type", ""),
            request.stream(),
            ctx.config.http.upload_dir,
            limit,
            ctx.config.http.read_timeout_seconds,
        )
    except upload.TooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except upload.TooSlow as exc:
        raise ApiError(408, str(exc)) from None
    except upload.BadForm as exc:
        raise ApiError(400, str(exc)) from None


async def job_of(
    ctx: Context,
    form: upload.Form,
    field: str,
    options: JobOptions,
    origin: str,
    pcm: bool = False,
) -> JobRecord:
    """The job of the form's file ``field`` (400 without one): made, or found when the same
    audio with the same options was asked for before."""
    stored = form.file(field)
    if stored is None:
        form.discard()
        raise ApiError(400, f"'{field}' is required: the audio file, as a form upload", field)
    try:
        submitted = await run_in_threadpool(
            uploads.submit,
            ctx.config,
            ctx.store,
            stored.path,
            stored.filename,
            options,
            origin,
            pcm,
        )
    except UserError as exc:
        form.discard()
        raise ApiError(400, str(exc), field) from None
    finally:
        for extra in (f for files in form.files.values() for f in files if f is not stored):
            extra.path.unlink(missing_ok=True)
    return submitted.job


def references(ctx: Context, names: list[str], urls: list[str]) -> tuple[tuple[str, str], ...]:
    """OpenAI's known speakers: (name, stored clip) pairs from the two parallel lists."""
    if len(names) != len(urls):
        raise ApiError(
            400,
            f"known_speaker_names[] has {len(names)} names and known_speaker_references[] "
            f"{len(urls)} clips: give one clip per name",
            "known_speaker_references[]",
        )
    pairs = []
    for name, url in zip(names, urls, strict=True):
        if not name.strip():
            raise ApiError(400, "known_speaker_names[]: a name is empty", "known_speaker_names[]")
        try:
            pairs.append((name.strip(), str(uploads.reference(ctx.config, url))))
        except UserError as exc:
            raise ApiError(400, str(exc), "known_speaker_references[]") from None
    return tuple(pairs)
