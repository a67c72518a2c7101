"""The spool: a file's audio decoded once to 16 kHz int16 PCM in the work folder, from which
chunks and diarization windows are read (memory follows the chunk, not the file).

It is a work file, not a result: deleted when its job ends, and decoded again from the source
if it is missing when a resumed job needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import numpy as np

from daemon.pipeline import audio
from daemon.pipeline.vad import Chunk, chunk_samples


def spool_path(work_dir: Path, sha256: str) -> Path:
    """Where the spool of a file with this content lives."""
    return work_dir / f"{sha256}.pcm"


def drop(work_dir: Path, sha256: str) -> None:
    """Delete a spool (its job has ended); a missing one is fine."""
    with suppress(OSError):
        spool_path(work_dir, sha256).unlink()


def remove_partials(work_dir: Path) -> int:
    """Delete half-written spools a killed decoder left behind; how many there were."""
    removed = 0
    for part in work_dir.glob("*.pcm.part"):
        part.unlink(missing_ok=True)
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
