"""A live ``transcribd run`` with ``[http] listen`` on 127.0.0.1 and a free port, a key made
with ``transcribd keys add``: what the HTTP tests talk to, with real clients."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_config
from tests.e2e.running import Daemon


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    root: Path
    config: Path
    url: str
    key: str
    daemon: Daemon

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    def jobs(self) -> list[dict[str, object]]:
        return self.daemon.jobs()


def make_key(config: Path, name: str = "tester") -> str:
    out = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config), "keys", "add", name],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered /healthz")


def start_live(root: Path, model_cache: Path, http: str = "", extra: str = "") -> Live:
    """A daemon serving HTTP, with its own folders under ``root``; ``http``: more keys of the
    ``[http]`` table; ``extra``: more TOML."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    table = f'[http]\nlisten = "127.0.0.1:{port}"\nupload_dir = "{root / "uploads"}"\n' + http
    config = write_config(root, model_cache, table + extra)
    key = make_key(config)
    daemon = Daemon(config)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    return Live(root, config, url, key, daemon)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Live]:
    """One serving daemon for a module's tests (its models stay warm between them)."""
    server = start_live(tmp_path_factory.mktemp("live"), model_cache)
    yield server
    server.daemon.stop()


def cut(src: Path, dst: Path, start: float, end: float) -> Path:
    """Seconds [start, end) of a 16-bit WAV as a WAV of its own."""
    with wave.open(str(src)) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        w.setpos(int(start * rate))
        frames = w.readframes(int((end - start) * rate))
    with wave.open(str(dst), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)
    return dst
