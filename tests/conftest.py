from __future__ import annotations

import math
import os
import struct
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon import config as config_mod
from daemon.config import Config
from daemon.store import Store, open_store
from tests.pgserver import REQUIRE_ENV, PostgresServer, Unavailable

REPO = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("TRANSCRIBD_EVAL", REPO.parent / "shared" / "eval"))


class MemoryCacheStore:
    """The step cache's store in a dict (for tests about the steps, not the database)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], Any] = {}

    def cache_get(self, sha256: str, step: str, params_hash: str) -> Any | None:
        return self.rows.get((sha256, step, params_hash))

    def cache_put(self, sha256: str, step: str, params_hash: str, payload: Any, now: Any) -> None:
        self.rows[(sha256, step, params_hash)] = payload

    def cache_drop(self, sha256: str, step: str, params_hash: str) -> None:
        self.rows.pop((sha256, step, params_hash), None)


def need_eval(*parts: str) -> Path:
    """A file under ../shared/eval, or skip the test saying why."""
    path = EVAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"evaluation data not found: {path} (expected ../shared/eval beside the repo)")
    return path


def write_wav(
    path: Path,
    seconds: float,
    rate: int = 16000,
    channels: int = 1,
    freq: float = 440.0,
    amplitude: float = 0.3,
) -> Path:
    """A tone as 16-bit PCM WAV."""
    n = int(seconds * rate)
    frames = bytearray()
    for i in range(n):
        v = int(amplitude * 32767 * math.sin(2 * math.pi * freq * i / rate))
        frames += struct.pack("<h", v) * channels
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def write_config(tmp_path: Path, model_cache: Path, extra: str = "") -> Path:
    """A TOML config file with everything under ``tmp_path`` (the fixed balanced profile keeps
    model tests fast and deterministic); ``extra`` is appended TOML."""
    f = tmp_path / "config.toml"
    f.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\nstable_seconds = 0.2\n'
        f'[output]\ndir = "{tmp_path / "out"}"\n'
        '[pipeline]\nprofile = "balanced"\n'
        f'[models]\ncache_dir = "{model_cache}"\n'
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.5\n' + extra
    )
    return f


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One joined-model cache for the whole session (joining base takes a second)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def config_file(tmp_path: Path, model_cache: Path) -> Path:
    return write_config(tmp_path, model_cache)


@pytest.fixture
def make_config(tmp_path: Path, model_cache: Path) -> Callable[..., Config]:
    def make(**sections: dict[str, Any]) -> Config:
        raw: dict[str, dict[str, Any]] = {
            "database": {"url": f"sqlite:///{tmp_path / 'jobs.db'}"},
            "watch": {"folders": [str(tmp_path / "inbox")], "stable_seconds": 0.3},
            "output": {"dir": str(tmp_path / "out")},
            "pipeline": {"profile": "balanced"},
            "models": {"cache_dir": str(model_cache)},
            "daemon": {"work_dir": str(tmp_path / "work"), "tick_seconds": 0.2},
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return config_mod.from_mapping(raw)

    return make


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
def store(config: Config) -> Store:
    return open_store(config)


def start_postgres(own: bool = False) -> PostgresServer:
    """A real PostgreSQL server (Debian's package, started as ``postgres`` in a temporary
    folder on a Unix socket; ``own``: never the one TRANSCRIBD_TEST_POSTGRES_URL names);
    skips the test with the reason where none can be started, fails it instead when CI
    requires PostgreSQL (TRANSCRIBD_REQUIRE_POSTGRES=1).  The caller stops it."""
    server = PostgresServer()
    if own and server.url:
        pytest.skip("a PostgreSQL server of the test's own is needed (not a given URL)")
    try:
        server.start()
    except (Unavailable, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"PostgreSQL is required here but could not be started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (see :func:`start_postgres`)."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh empty database on the session's PostgreSQL server."""
    return postgres.database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def make_video(src: Path, dst: Path, fps: int = 5) -> Path:
    """Mux ``src``'s audio (as AAC) with a small synthetic video stream into ``dst`` (mp4/mkv)."""
    import av
    import numpy as np

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        a = out.add_stream("aac", rate=16000, layout="mono")
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for frame in inp.decode(audio=0):
            frame.pts = None
            for packet in a.encode(frame):
                out.mux(packet)
        seconds = inp.duration / 1e6 if inp.duration else 5.0
        for i in range(int(seconds * fps)):
            img = av.VideoFrame.from_ndarray(
                np.full((64, 64, 3), i * 10 % 255, np.uint8), format="rgb24"
            )
            img.pts = i
            for packet in v.encode(img):
                out.mux(packet)
        for packet in a.encode(None):
            out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    return dst


def speech_file(out: Path, sources: list[Path], gap: float = 0.8) -> Path:
    """Concatenate real recordings (decoded to 16 kHz mono) with ``gap`` seconds of silence
    between them into a 16-bit WAV: a longer real-speech file made at test time."""
    import numpy as np

    from daemon.pipeline.audio import decode_blocks

    silence = np.zeros(int(gap * 16000), np.float32)
    parts = []
    for src in sources:
        parts += [*decode_blocks(src), silence]
    audio = np.concatenate(parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return out


def lj_clips() -> list[Path]:
    """The 16 LJSpeech clips of ../shared/eval (skips the test when absent)."""
    folder = need_eval("asr_en")
    clips = sorted(folder.glob("LJ001-*.wav"))
    if len(clips) < 16:
        pytest.skip(f"expected 16 LJ001 clips in {folder}, found {len(clips)}")
    return clips
