"""The streamed multipart reader against real request bodies (as httpx encodes them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from daemon.http import upload


def body(
    files: dict[str, tuple[str, bytes]], data: dict[str, str | list[str]]
) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.headers["content-type"], request.read()


async def pieces(raw: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for i in range(0, len(raw), size):
        yield raw[i : i + size]


def test_fields_and_files_land_in_the_folder_only(tmp_path: Path) -> None:
    audio = bytes(range(256)) * 2000
    kind, raw = body(
        {"file": ("../../etc/evil name.wav", audio)},
        {"model": "whisper-1", "known_speaker_names[]": ["Ann", "Bo"]},
    )
    form = asyncio.run(upload.receive(kind, pieces(raw), tmp_path, limit=10 << 20))
    assert form.value("model") == "whisper-1"
    assert form.values("known_speaker_names") == ["Ann", "Bo"]
    stored = form.file("file")
    assert stored is not None and stored.filename == "../../etc/evil name.wav"
    assert stored.path.parent == tmp_path and stored.path.read_bytes() == audio
    assert stored.size == len(audio)
    assert [p.name for p in tmp_path.iterdir()] == [stored.path.name]


def test_too_large_is_refused_as_it_passes_the_limit_and_leaves_nothing(tmp_path: Path) -> None:
    kind, raw = body({"file": ("a.wav", b"x" * 300_000)}, {})
    seen = []

    async def counted() -> AsyncIterator[bytes]:
        async for chunk in pieces(raw, 10_000):
            seen.append(len(chunk))
            yield chunk

    with pytest.raises(upload.TooLarge):
        asyncio.run(upload.receive(kind, counted(), tmp_path, limit=100_000))
    assert sum(seen) <= 110_000  # stopped reading at the limit, not after the whole body
    assert list(tmp_path.iterdir()) == []


def test_not_a_form_and_a_stalled_client(tmp_path: Path) -> None:
    with pytest.raises(upload.BadForm, match="multipart/form-data"):
        asyncio.run(upload.receive("application/json", pieces(b"{}"), tmp_path, 1000))

    async def stalls() -> AsyncIterator[bytes]:
        yield b"--b\r\n"
        await asyncio.sleep(5)
        yield b""

    with pytest.raises(upload.TooSlow):
        asyncio.run(
            upload.receive("multipart/form-data; boundary=b", stalls(), tmp_path, 1000, 0.2)
        )
