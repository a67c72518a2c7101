"""The spool: a file's audio decoded once to 16 kHz int16 PCM in the work folder, from which
chunks and diarization windows are read (memory follows the chunk, not the file).

It is a work file, not a result: one per job attempt (two daemons sharing a work folder never
share one), deleted, whole or half-written, when the attempt ends or stops (a job cancelled,
failed, done, or stopped at a checkpoint by a graceful stop: it resumes from its cached steps
and decodes its file again), and decoded again from the source if it is missing when a resumed
job needs it.  Only a killed daemon leaves spools behind; they go at the next start.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection
from contextlib import suppress
from pathlib import Path

import numpy as np

from daemon.pipeline import audio
from daemon.pipeline.vad import Chunk, chunk_samples
from daemon.sysload import pid_alive


def job_key(job_id: int, attempt: int) -> str:
    """The spool key of one attempt of a job."""
    return f"j{job_id}a{attempt}"


def spool_path(work_dir: Path, sha256: str, key: str) -> Path:
    """Where the spool of content ``sha256`` lives for ``key`` (see :func:`job_key`)."""
    return work_dir / f"{sha256}.{key}.pcm"


def drop(path: Path) -> None:
    """Delete a spool and what a decode cut short left of it (its attempt has ended or
    stopped); a missing one is fine."""
    for leftover in (path, path.with_name(path.name + ".part")):
        with suppress(OSError):
            leftover.unlink()


_SPOOL = re.compile(r"^[0-9a-f]{64}\.(j\d+a\d+|p(\d+))\.pcm(\.part)?$")


def remove_stale(work_dir: Path, live: Collection[str]) -> int:
    """Delete spools (whole or half-written) but those of the ``live`` keys (the attempts that
    run or will run next, this daemon's or another's) and of processes still running a
    one-shot ``transcribe``.  Returns how many went."""
    removed = 0
    for entry in work_dir.glob("*.pcm*"):
        match = _SPOOL.match(entry.name)
        if match is not None and (
            match.group(1) in live or (match.group(2) and pid_alive(int(match.group(2))))
        ):
            continue
        if not entry.name.endswith((".pcm", ".pcm.part")):
            continue
        entry.unlink(missing_ok=True)
        removed += 1
    return removed


class Spool:
    """The spool of one job's source file; safe to read from two threads (ASR, diarization)."""

    def __init__(self, path: Path, source: Path) -> None:
        self.path = path
        self.source = source
        self.samples = 0
        """Samples the complete spool holds (known once the decode step has run or is cached)."""
        self._lock = threading.Lock()

    def decode(self, on_block: Callable[[audio.Audio, int], None]) -> int:
        """Decode the source into the spool, calling ``on_block`` per block; samples written."""
        self.samples = audio.decode_to_spool(self.source, self.path, on_block=on_block)
        return self.samples

    def read(self, start: int, end: int) -> audio.Audio:
        """Samples ``[start, end)``, decoding the spool again first if it is missing or short."""
        with self._lock:
            if not self.path.exists() or audio.spool_samples(self.path) != self.samples:
                audio.decode_to_spool(self.source, self.path)
        return audio.read_spool(self.path, start, end)

    def chunk(self, chunk: Chunk) -> audio.Audio:
        """The speech of a chunk (its regions joined)."""
        parts = [self.read(a, b) for a, b in chunk_samples(chunk)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
