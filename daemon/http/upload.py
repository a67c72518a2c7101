"""A multipart upload streamed straight into ``[http] upload_dir``: never whole in memory,
never a byte outside that folder, refused as soon as it passes the size limit.

python-multipart parses the stream; this module only decides where each part goes: form
fields into memory (small, capped), files into a temporary file of the upload folder, fsynced
when complete.  A client's file name is data: it is kept for display and never used in a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FIELD_LIMIT = 24 << 20
"""Bytes a form field (not a file) may hold: prompts, names, and known speakers' clips as
base64 data URLs (up to 16 MB of audio each, as OpenAI's API sends them)."""
MAX_FILES = 16
"""Files one request may carry (the audio and a few known speakers' clips)."""
TEMP_PREFIX = ".upload-"


class TooLarge(Exception):
    """The request passed ``[http] max_upload_mb``."""


class BadForm(Exception):
    """The body is not the multipart form the route takes (the message says why)."""


class TooSlow(Exception):
    """The client sent nothing for longer than the read timeout."""


@dataclass
class StoredFile:
    """An uploaded file, written in full to a temporary file of the upload folder."""

    field: str
    filename: str
    """The client's name for it (shown, never used as a path)."""
    path: Path
    size: int = 0


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[StoredFile]] = field(default_factory=dict)

    def value(self, name: str, default: str | None = None) -> str | None:
        """A field's last value (``name`` or ``name[]``), or ``default``."""
        got = self.fields.get(name) or self.fields.get(f"{name}[]")
        return got[-1] if got else default

    def values(self, name: str) -> list[str]:
        """Every value of a repeated field (``name[]`` or ``name``)."""
        return [*self.fields.get(f"{name}[]", []), *self.fields.get(name, [])]

    def file(self, name: str) -> StoredFile | None:
        got = self.files.get(name)
        return got[0] if got else None

    def discard(self) -> None:
        """Remove every stored file (the request failed before they were taken)."""
        for stored in (f for files in self.files.values() for f in files):
            stored.path.unlink(missing_ok=True)


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    data: bytearray = field(default_factory=bytearray)
    stored: StoredFile | None = None
    fd: int | None = None
    header: bytes = b""
    value: bytes = b""


class _Receiver:
    """python-multipart's callbacks: where each part's bytes go."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.total = 0
        self.form = Form()
        self.part = _Part()
        self.pending: list[tuple[int, bytes]] = []
        """File data to write (outside the parser's callbacks, in a thread)."""
        self.finished: list[_Part] = []

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.part.header.lower()] = self.part.value
        self.part.header = self.part.value = b""

    def on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise BadForm("a form part has no name")
        self.part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if sum(len(v) for v in self.form.files.values()) >= MAX_FILES:
            raise BadForm(f"more than {MAX_FILES} files in one request")
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=self.folder)
        filename = options[b"filename"].decode("utf-8", "replace")
        self.part.fd = fd
        self.part.stored = StoredFile(self.part.name, filename, Path(temp))
        self.form.files.setdefault(self.part.name, []).append(self.part.stored)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.fd is None:
            if len(self.part.data) + len(chunk) > FIELD_LIMIT:
                raise BadForm(f"form field '{self.part.name}' is longer than {FIELD_LIMIT} bytes")
            self.part.data += chunk
            return
        assert self.part.stored is not None
        self.part.stored.size += len(chunk)
        self.pending.append((self.part.fd, bytes(chunk)))

    def on_part_end(self) -> None:
        if self.part.fd is None:
            text = self.part.data.decode("utf-8", "replace")
            self.form.fields.setdefault(self.part.name, []).append(text)
        else:
            self.finished.append(self.part)

    def flush(self) -> None:
        """Write what arrived; fsync and close the files that are complete (in a thread)."""
        pending, self.pending = self.pending, []
        for fd, chunk in pending:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        finished, self.finished = self.finished, []
        for part in finished:
            assert part.fd is not None
            os.fsync(part.fd)
            os.close(part.fd)
            part.fd = None

    def close_all(self) -> None:
        if self.part.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.part.fd)
            self.part.fd = None


async def _chunks(stream: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks; :class:`TooSlow` when none comes for ``idle_seconds``."""
    iterator = stream.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), idle_seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise TooSlow(f"no data from the client for {idle_seconds:g} s") from None
        yield chunk


async def receive(
    content_type: str,
    stream: AsyncIterator[bytes],
    folder: Path,
    limit: int,
    idle_seconds: float = 60.0,
) -> Form:
    """Read a ``multipart/form-data`` body into a :class:`Form`, its files written to
    temporary files of ``folder``.  :class:`TooLarge` as soon as the body passes ``limit``
    bytes, :class:`BadForm` when it is not such a form, :class:`TooSlow` for a client that
    stalls; on any error the files written so far are removed."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise BadForm("expected a multipart/form-data body (a file upload)")
    folder.mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(folder, limit)
    parser = MultipartParser(params[b"boundary"], _callbacks(receiver))
    try:
        async for chunk in _chunks(stream, idle_seconds):
            receiver.total += len(chunk)
            if receiver.total > limit:
                raise TooLarge(f"the upload is larger than {limit // (1 << 20)} MB")
            parser.write(chunk)
            await run_in_threadpool(receiver.flush)
        parser.finalize()
        await run_in_threadpool(receiver.flush)
    except FormParserError as exc:
        receiver.close_all()
        receiver.form.discard()
        raise BadForm(f"malformed multipart body: {exc}") from None
    except BaseException:
        receiver.close_all()
        receiver.form.discard()
        raise
    return receiver.form


def _callbacks(r: _Receiver) -> MultipartCallbacks:
    return {
        "on_part_begin": r.on_part_begin,
        "on_part_data": r.on_part_data,
        "on_part_end": r.on_part_end,
        "on_header_field": r.on_header_field,
        "on_header_value": r.on_header_value,
        "on_header_end": r.on_header_end,
        "on_headers_finished": r.on_headers_finished,
    }


def openapi_form(
    required: list[str], files: list[str], fields: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A route's ``openapi_extra`` describing its multipart body: the routes read the body as
    a stream themselves (:func:`receive`), so FastAPI cannot see its parts."""
    properties = {name: {"type": "string", "format": "binary"} for name in files} | fields
    schema = {"type": "object", "required": required, "properties": properties}
    body = {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    return {"requestBody": body}


def remove_stale(folder: Path, older_than: float, now: float) -> int:
    """Remove temporary upload files older than ``older_than`` seconds (a server killed
    mid-upload left them); returns how many went."""
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > older_than:
                entry.unlink()
                removed += 1
    return removed
