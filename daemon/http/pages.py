"""The pages, served by the HTTP face itself (no CDN, no build step): sign in with a key, the
queue live, a transcript with its audio, its speakers renamed or enrolled, the voices, search.

Server-rendered by Jinja2 with autoescape: every string that came from a file (names,
transcripts, speakers) is escaped, and a Content-Security-Policy allows only the server's own
scripts and styles (no inline script at all).  Signing in sets an HttpOnly, SameSite=Strict
cookie; every change (a POST) carries the session's CSRF token.  With ``[http] auth = "none"``
(loopback only) there is no sign-in.  Audio is served only as the file of a job, never by a
path taken from the request.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from daemon.app import control, speakers, voices
from daemon.config.schema import OUTPUT_FORMATS
from daemon.errors import UserError
from daemon.http import views
from daemon.http.context import Context
from daemon.http.errors import ApiError
from daemon.http.results import transcript as transcript_of
from daemon.jobs import JobStatus
from daemon.keybook import Session
from daemon.nodes import node_views
from daemon.pipeline.audio import encode_opus
from daemon.pipeline.outputs import rename_speakers, render
from daemon.publish import cue_rules
from daemon.readable import duration
from daemon.rows import TERMINAL
from daemon.transcripts import MARK

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["clock"] = duration
COOKIE = "transcribd_session"
PLAYABLE = {".mp3", ".m4a", ".aac", ".mp4", ".wav", ".flac", ".ogg", ".oga", ".opus", ".webm"}
"""Formats a browser plays as they are; others are served as Opus, encoded once."""
SEARCH_LIMIT = 100
SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SignIn(Exception):
    """The page needs a signed-in browser."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def _session(request: Request) -> Session:
    """The browser's session (:class:`SignIn` without one); "none" auth: everyone's."""
    ctx = _ctx(request)
    if ctx.config.http.auth == "none":
        return Session("local", ctx.csrf)
    token = request.cookies.get(COOKIE)
    found = None
    if token:
        found = await run_in_threadpool(ctx.store.sessions.get, token, ctx.store.now())
    if found is None:
        raise SignIn(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return found


async def _change(request: Request) -> tuple[Session, dict[str, str]]:
    """A POST's session and form, its CSRF token checked (403 when it does not match)."""
    session = await _session(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        raise ApiError(403, "the page is out of date (its CSRF token does not match): reload it")
    return session, form


def _page(request: Request, name: str, session: Session, **values: Any) -> HTMLResponse:
    ctx = _ctx(request)
    values |= {
        "csrf": session.csrf,
        "signed_in": ctx.config.http.auth != "none" and bool(session.key_name),
        "who": session.key_name,
        "notice": request.query_params.get("notice"),
    }
    response = templates.TemplateResponse(request, name, values)
    response.headers.update(SECURITY)
    return response


def _back(path: str, notice: str = "") -> RedirectResponse:
    where = path + (("&" if "?" in path else "?") + "notice=" + quote(notice) if notice else "")
    return RedirectResponse(where, status_code=303)


def install(app: FastAPI) -> None:
    """The pages' sign-in redirect (an exception handler) and their static files."""
    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    async def sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignIn)
        if request.url.path.startswith("/ui/"):
            return JSONResponse({"detail": "sign in"}, status_code=401)
        return RedirectResponse(f"/login?next={quote(exc.path)}", status_code=303)

    app.add_exception_handler(SignIn, sign_in)


# ------------------------------------------------------------------ sign in
@router.get("/login")
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    anonymous = Session("", "")
    return _page(request, "login.html", anonymous, next=_local(next), page="login")


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = _ctx(request)
    form = await request.form()
    key, goal = str(form.get("key", "")), _local(str(form.get("next", "/")))
    name = await run_in_threadpool(ctx.store.keys.name_of, key, ctx.store.now()) if key else None
    if name is None:
        anonymous = Session("", "")
        page = _page(request, "login.html", anonymous, next=goal, problem="That key is not known.")
        page.status_code = 401
        return page
    token, _session_made = await run_in_threadpool(ctx.store.sessions.open, name, ctx.store.now())
    response = RedirectResponse(goal, status_code=303)
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _change(request)
    token = request.cookies.get(COOKIE)
    if token:
        await run_in_threadpool(_ctx(request).store.sessions.close, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _local(path: str) -> str:
    """Only a path of this server (never another site) to go back to after signing in."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


# ------------------------------------------------------------------ the queue
def _rows(ctx: Context, status: str | None, folder: str | None) -> dict[str, Any]:
    statuses = [JobStatus(status)] if status in {s.value for s in JobStatus} else None
    uploads = Path(ctx.config.http.upload_dir)
    rows = []
    for shown in control.views(ctx.store, statuses, limit=500):
        job = shown.job
        where = views.folder_of(job.path, list(ctx.config.watch.folders), uploads)
        if folder and where != folder:
            continue
        rows.append(
            {
                "id": job.id,
                "name": job.name,
                "status": job.status.value,
                "progress": round(job.progress, 3),
                "eta": duration(shown.eta) if shown.eta is not None else "",
                "profile": job.profile,
                "node": job.node,
                "error": job.error,
                "folder": where,
                "can_requeue": job.status in TERMINAL and job.status is not JobStatus.SUPERSEDED,
                "can_cancel": job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
            }
        )
    beats = ctx.store.results.states("daemon")
    plans = ctx.store.results.states("plan")
    nodes = [
        {
            "node": n.node,
            "alive": n.alive,
            "host": n.host,
            "plan": f"{n.plan['profile']} {n.plan['workers']}x{n.plan['threads']}"
            if n.plan
            else "",
        }
        for n in node_views(beats, plans, ctx.store.now(), ctx.config)
    ]
    return {"jobs": rows, "nodes": nodes}


def _plan(plan: dict[str, Any] | None) -> str:
    return f"{plan['profile']} {plan['workers']}x{plan['threads']}" if plan else ""


@router.get("/")
async def queue(request: Request, status: str = "", folder: str = "") -> HTMLResponse:
    session = await _session(request)
    ctx = _ctx(request)
    data = await run_in_threadpool(_rows, ctx, status or None, folder or None)
    folders = ["uploads", *map(str, ctx.config.watch.folders), "elsewhere"]
    return _page(
        request,
        "queue.html",
        session,
        page="queue",
        jobs=data["jobs"],
        nodes=data["nodes"],
        statuses=[s.value for s in JobStatus],
        status=status,
        folders=folders,
        folder=folder,
    )


@router.get("/ui/queue.json")
async def queue_json(request: Request, status: str = "", folder: str = "") -> JSONResponse:
    await _session(request)
    data = await run_in_threadpool(_rows, _ctx(request), status or None, folder or None)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.post("/jobs/{job_id}/requeue")
async def requeue(request: Request, job_id: int) -> Response:
    await _change(request)
    done = await run_in_threadpool(control.requeue, _ctx(request).store, job_id)
    why = done.skipped.get(job_id)
    return _back("/", f"#{job_id} requeued" if not why else f"#{job_id} not requeued: {why}")


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: int) -> Response:
    session, _form = await _change(request)
    who = "the pages" if session.key_name == "local" else f"page user {session.key_name}"
    try:
        stopped = await run_in_threadpool(control.cancel, _ctx(request).store, job_id, who)
    except UserError as exc:
        return _back("/", str(exc))
    return _back("/", f"#{job_id} cancelled" if stopped else f"#{job_id} had ended")


# ------------------------------------------------------------------ one transcript
@router.get("/jobs/{job_id}")
async def transcript_page(request: Request, job_id: int, t: float = 0.0) -> HTMLResponse:
    session = await _session(request)
    ctx = _ctx(request)
    job = await _job(ctx, job_id)
    text, names = await transcript_of(ctx, job)
    spoken = views.speakers(text, names)
    rows = {s.label: i for i, s in enumerate(spoken)}
    return _page(
        request,
        "transcript.html",
        session,
        page="transcript",
        job=job,
        transcript=text,
        names=names,
        turns=views.turns(text, names),
        speakers=spoken,
        spans=views.timeline(text),
        loop_rows=rows,
        duration=duration(text.duration),
        formats=OUTPUT_FORMATS,
        start_at=max(0.0, t),
    )


async def _job(ctx: Context, job_id: int) -> Any:
    try:
        return await run_in_threadpool(control.job, ctx.store, job_id)
    except UserError as exc:
        raise ApiError(404, str(exc)) from None


@router.get("/jobs/{job_id}/audio")
async def audio(request: Request, job_id: int) -> Response:
    """The job's own file (by its id, never a path from the request), with ranges; a format
    a browser cannot play is served as Opus, encoded once into the work folder."""
    await _session(request)
    ctx = _ctx(request)
    job = await _job(ctx, job_id)
    source = Path(job.path)
    if not source.is_file():
        raise ApiError(404, f"the audio of job {job_id} is gone ({job.name})")
    if source.suffix.lower() in PLAYABLE:
        return FileResponse(source, headers={"Cache-Control": "private, max-age=3600"})
    played = Path(ctx.config.daemon.work_dir) / "audio" / f"{job.sha256[:32]}.ogg"
    if not played.is_file():
        await run_in_threadpool(encode_opus, source, played)
    return FileResponse(played, media_type="audio/ogg")


@router.get("/jobs/{job_id}/download/{fmt}")
async def download(request: Request, job_id: int, fmt: str) -> Response:
    await _session(request)
    if fmt not in OUTPUT_FORMATS:
        raise ApiError(404, f"no format '{fmt}'")
    ctx = _ctx(request)
    job = await _job(ctx, job_id)
    text, names = await transcript_of(ctx, job)
    body = render(rename_speakers(text, names), fmt, False, cue_rules(ctx.config))
    name = quote(f"{Path(job.name).stem}.{fmt}")
    disposition = f"attachment; filename*=UTF-8''{name}"
    return Response(
        body, media_type="text/plain; charset=utf-8", headers={"Content-Disposition": disposition}
    )


@router.post("/jobs/{job_id}/speakers/{label}")
async def rename(request: Request, job_id: int, label: str) -> Response:
    _session_used, form = await _change(request)
    name = form.get("name", "").strip()
    ctx = _ctx(request)
    if not name:
        return _back(f"/jobs/{job_id}", "a speaker's name cannot be empty")
    try:
        await run_in_threadpool(
            speakers.speakers, ctx.config, job_id, {label: name}, False, ctx.store
        )
    except UserError as exc:
        return _back(f"/jobs/{job_id}", str(exc))
    return _back(f"/jobs/{job_id}", f"{label} is now {name}")


@router.post("/jobs/{job_id}/speakers/{label}/enroll")
async def enroll(request: Request, job_id: int, label: str) -> Response:
    _session_used, form = await _change(request)
    name = form.get("name", "").strip()
    ctx = _ctx(request)
    try:
        voice = await run_in_threadpool(
            voices.enroll_speaker, ctx.config, job_id, label, name, ctx.store
        )
    except UserError as exc:
        return _back(f"/jobs/{job_id}", str(exc))
    return _back(f"/jobs/{job_id}", f"enrolled {voice.name}: {voice.seconds:.0f} s of speech")


# ------------------------------------------------------------------ voices, search
@router.get("/voices")
async def voices_page(request: Request) -> HTMLResponse:
    session = await _session(request)
    ctx = _ctx(request)
    listed = await run_in_threadpool(voices.list_voices, ctx.config, ctx.store)
    return _page(request, "voices.html", session, page="voices", voices=listed)


@router.post("/voices/remove")
async def remove_voice(request: Request) -> Response:
    _session_used, form = await _change(request)
    ctx = _ctx(request)
    name = form.get("name", "")
    try:
        await run_in_threadpool(voices.remove_voice, ctx.config, name, ctx.store)
    except UserError as exc:
        return _back("/voices", str(exc))
    return _back("/voices", f"removed {name}")


@router.get("/search")
async def search(request: Request, q: str = "") -> HTMLResponse:
    session = await _session(request)
    ctx = _ctx(request)
    found = await run_in_threadpool(ctx.store.transcripts.search, q, SEARCH_LIMIT) if q else []
    hits = [
        {
            "job_id": h.job_id,
            "name": h.upload_name or Path(h.path).name,
            "speaker": h.speaker,
            "start": round(h.start, 3),
            "snippet": marked(h.snippet),
        }
        for h in found
    ]
    return _page(request, "search.html", session, page="search", q=q, hits=hits, limit=SEARCH_LIMIT)


def marked(snippet: str) -> Markup:
    """A hit's snippet with its matching words in <mark>, everything else escaped."""
    out = Markup("")
    inside = False
    for part in snippet.replace(MARK[1], MARK[0]).split(MARK[0]):
        out += Markup("<mark>{}</mark>").format(part) if inside else escape(part)
        inside = not inside
    return out
