"""Who asks: a key of ``transcribd keys``, given as ``Authorization: Bearer KEY`` (the OpenAI
clients) or as the password of HTTP Basic auth (a client with only a URL setting, such as
Bazarr: ``http://any:KEY@host:port``).  With ``[http] auth = "none"`` (loopback only) no key is
asked for.  The key's name becomes the job's origin (``http:NAME``)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from daemon.http.context import Context
from daemon.http.errors import ApiError

LOCAL = "local"
"""The caller's name where no key is asked for."""


def key_from(authorization: str | None) -> str | None:
    """The key an ``Authorization`` header carries (Bearer, or Basic's password; Basic's user
    name when the password is empty: ``http://KEY@host``), or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    return password or user or None


async def caller(conn: HTTPConnection) -> str:
    """The name of the key the request gives (:class:`ApiError` 401 without a valid one)."""
    ctx: Context = conn.app.state.ctx
    if ctx.config.http.auth == "none":
        return LOCAL
    key = key_from(conn.headers.get("authorization"))
    if key is None:
        raise ApiError(
            401,
            "no API key: give one as 'Authorization: Bearer KEY' (or as the password of Basic "
            "auth); make one with: transcribd keys add NAME",
            code="invalid_api_key",
            headers={"WWW-Authenticate": 'Basic realm="transcribd"'},
        )
    name = await run_in_threadpool(ctx.store.keys.name_of, key, ctx.store.now())
    if name is None:
        raise ApiError(401, "invalid API key", code="invalid_api_key")
    return name


def origin(name: str) -> str:
    """A job's origin for a request by the key ``name``."""
    return "http" if name == LOCAL else f"http:{name}"


Caller = Annotated[str, Depends(caller)]
"""A route's parameter: the name of the key the request gave (401 without one)."""
