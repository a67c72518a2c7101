"""Errors in each API's own shape, with the status codes its clients expect.

The OpenAI routes and the jobs API (``/v1/...``) answer ``{"error": {"message", "type",
"param", "code"}}``, so that the official clients raise their usual exceptions (400
BadRequestError, 401 AuthenticationError, 404 NotFoundError, 413, 429 RateLimitError, 500,
503); whisper-asr-webservice's routes answer FastAPI's ``{"detail": message}``, as it does.
Nothing a client sees carries a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    """A request that cannot be answered as asked: its status, one line saying why, and which
    parameter (if one) is to blame."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


def body(path: str, status: int, message: str, param: str | None, code: str | None) -> Any:
    """The error as the API of ``path`` shapes it."""
    if path.startswith("/v1/"):
        kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return {"detail": message}


def respond(request: Request, error: ApiError) -> JSONResponse:
    shaped = body(request.url.path, error.status, error.message, error.param, error.code)
    return JSONResponse(shaped, status_code=error.status, headers=error.headers)


def install(app: FastAPI) -> None:
    """Every error a route or FastAPI raises, in its API's shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return respond(request, exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        return respond(request, ApiError(exc.status_code, str(exc.detail), headers=headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(part) for part in first.get("loc", ()) if part not in ("query", "body")]
        param = ".".join(where) or None
        message = f"{param}: {first.get('msg', 'invalid')}" if param else "invalid request"
        return respond(request, ApiError(400, message, param=param))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "%s %s failed: %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
            exc_info=exc,
        )
        return respond(request, ApiError(500, f"internal error ({type(exc).__name__})"))
