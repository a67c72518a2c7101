"""The HTTP face's server: one FastAPI app on uvicorn, inside ``transcribd run`` (a thread of
the daemon, when ``[http] listen`` is set) or alone (``transcribd serve``: a front node of a
fleet, no workers).  Its routes are thin: they call :mod:`daemon.app` and the store it opens.

``GET /healthz`` answers without a key (200, or 503 when the database cannot be reached); the
OpenAPI document is ``/openapi.json`` and its page ``/docs`` is served from the installed
swagger-ui-bundle (no CDN: it works offline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from daemon import __version__, db
from daemon.app import uploads
from daemon.config import Config, parse_listen
from daemon.errors import SetupError
from daemon.http import asr_api, errors, jobs_api, openai_api, pages, upload
from daemon.http.context import Context
from daemon.store import Store

log = logging.getLogger(__name__)

SWEEP_SECONDS = 3600.0
"""How often old uploads are looked for (:func:`daemon.app.uploads.sweep`)."""
STALE_UPLOAD_SECONDS = 3600.0
"""A half-written upload left by a killed server is removed after this long."""


def create_app(ctx: Context) -> FastAPI:
    """The ASGI app of one server, its routes sharing ``ctx``."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep(ctx))
        try:
            yield
        finally:
            sweeper.cancel()

    app = FastAPI(
        title="transcribd",
        version=__version__,
        description="Speaker-attributed transcripts on your own machines: OpenAI's audio API, "
        "whisper-asr-webservice's /asr and a jobs API; every request is a durable job.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    errors.install(app)
    if ctx.config.http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(ctx.config.http.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.include_router(openai_api.router)
    app.include_router(asr_api.router)
    app.include_router(jobs_api.router)
    pages.install(app)
    app.include_router(pages.router)
    _docs(app)

    @app.get("/healthz", tags=["Health"])
    async def healthz(request: Request) -> JSONResponse:
        """The node and whether its database answers (no key needed)."""
        try:
            await run_in_threadpool(ctx.store.counts)
        except Exception as exc:
            if not db.unreachable(exc):
                raise
            body = {"status": "unavailable", "node": ctx.node, "database": db.reason(exc)}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "node": ctx.node, "database": "ok"})

    return app


def _docs(app: FastAPI) -> None:
    """The OpenAPI page, with Swagger UI's files from the swagger-ui-bundle package."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="transcribd API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )


async def _sweep(ctx: Context) -> None:
    """Now and then: remove uploads whose jobs ended long ago, and half-written ones."""
    while True:
        try:
            folder = ctx.config.http.upload_dir
            stale = await run_in_threadpool(
                upload.remove_stale, folder, STALE_UPLOAD_SECONDS, time.time()
            )
            old = await run_in_threadpool(uploads.sweep, ctx.config, ctx.store)
            if stale or old:
                log.info("removed %d old upload file(s)", stale + old, extra={"removed": old})
        except Exception as exc:  # the database is down, say: the next round tries again
            log.warning("upload sweep failed: %s", exc)
        await asyncio.sleep(SWEEP_SECONDS)


class Server:
    """uvicorn serving one app, in a thread of its own (``run``) or in the caller's
    (``serve``).  The port is bound before :meth:`start` returns: a port that cannot be bound
    is a setup error, in one line."""

    def __init__(self, config: Config, store: Store) -> None:
        import uvicorn

        self.ctx = Context(config, store, store.node or config.daemon.node)
        host, port = parse_listen(config.http.listen)
        self._config = uvicorn.Config(
            create_app(self.ctx),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=5,
            lifespan="on",
            server_header=False,
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port bound (the one asked for, or the one taken for port 0)."""
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self._config.port

    def start(self) -> None:
        """Serve in a thread; return once listening (SetupError if it cannot)."""
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SetupError(f"http.listen {self.ctx.config.http.listen}: cannot listen there")
            time.sleep(0.02)
        log.info("serving HTTP", extra={"listen": self.ctx.config.http.listen, "port": self.port})

    def stop(self, timeout: float = 10.0) -> None:
        """Waiting requests answer 503 (their jobs go on); then the server closes."""
        self.ctx.stopping.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def describe(self) -> dict[str, Any]:
        return {"listen": self.ctx.config.http.listen, "port": self.port}
