"""Probe and streamed decode with PyAV: anything FFmpeg reads, video containers included.

Decoding never holds the whole file: :func:`decode_blocks` yields 16 kHz mono float32 blocks, and
:func:`decode_to_spool` writes them as int16 PCM to a spool file that chunks are later read from
(:func:`read_spool`), so memory is bounded by the block and chunk sizes, not the file's length.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from daemon.errors import DecodeError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    declared: float | None = None
    """Seconds the header promises (a WAV's data size, else the stream's duration), if any."""


def probe(path: Path) -> AudioInfo:
    """Container facts of the first audio stream; :class:`DecodeError` when there is none."""
    import av

    if path.is_dir():
        raise DecodeError("is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            streams = container.streams.audio
            if not streams:
                raise DecodeError("no audio stream in file")
            stream = streams[0]
            duration = 0.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            container_name = str(container.format.name)
            declared = _wav_declared(path) if container_name == "wav" else None
            return AudioInfo(
                duration=duration,
                sample_rate=int(stream.codec_context.sample_rate or 0),
                channels=int(stream.codec_context.channels or 0),
                codec=str(stream.codec_context.name),
                container=container_name,
                declared=declared if declared is not None else (duration or None),
            )
    except DecodeError:
        raise
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not decodable audio: {_reason(exc)}") from None


def _wav_declared(path: Path) -> float | None:
    """Seconds a WAV header's data size declares (FFmpeg clamps it to the file, hiding a
    truncation); None for streamed WAVs (size 0 or 0xFFFFFFFF) and formats ``wave`` cannot read."""
    import wave

    try:
        with wave.open(str(path), "rb") as w:
            frames, rate = w.getnframes(), w.getframerate()
            size = frames * w.getsampwidth() * w.getnchannels()
    except (wave.Error, EOFError, OSError, ValueError):
        return None
    if frames == 0 or rate <= 0 or size >= 0xFFFFFFFF - 16:
        return None
    return frames / rate


def probe_duration(path: Path) -> float | None:
    """Seconds of audio from the container header (cheap); None when it cannot tell."""
    try:
        return probe(path).duration or None
    except (DecodeError, OSError):
        return None


TRUNCATED_SHARE = 0.9
TRUNCATED_SECONDS = 1.0


def check_complete(decoded: float, declared: float | None) -> None:
    """:class:`DecodeError` when far less audio decoded than the header declares: a truncated
    copy or a damaged header (short by more than 10 % and more than a second)."""
    if declared is None or decoded >= declared * TRUNCATED_SHARE:
        return
    if declared - decoded <= TRUNCATED_SECONDS:
        return
    raise DecodeError(
        f"truncated or damaged: {format_seconds(decoded)} of audio decoded, but the header "
        f"declares {format_seconds(declared)}"
    )


def format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def decode_blocks(path: Path, block_seconds: float = 30.0) -> Iterator[Audio]:
    """Yield consecutive 16 kHz mono float32 blocks of ``block_seconds`` (the last one shorter)."""
    import av

    block = max(1, int(block_seconds * SAMPLE_RATE))
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pending: list[npt.NDArray[np.int16]] = []
    have = decoded = 0
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise DecodeError("no audio stream in file")
            stream = container.streams.audio[0]
            for packet in container.demux(stream):
                for frame in packet.decode():
                    frame.pts = None  # let the resampler count samples, not trust timestamps
                    for out in resampler.resample(frame):
                        pcm = np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1)
                        pending.append(pcm)
                        have += pcm.size
                        decoded += pcm.size
                        while have >= block:
                            joined = np.concatenate(pending)
                            yield _to_float(joined[:block])
                            rest = joined[block:]
                            pending = [rest] if rest.size else []
                            have = rest.size
            for out in resampler.resample(None):
                pending.append(np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1))
    except DecodeError:
        raise
    except (av.error.FFmpegError, ValueError) as exc:
        done = format_seconds(decoded / SAMPLE_RATE)
        raise DecodeError(f"decoding failed after {done} of audio: {_reason(exc)}") from None
    if pending:
        joined = np.concatenate(pending)
        if joined.size:
            yield _to_float(joined)


def decode_to_spool(
    path: Path,
    spool: Path,
    on_block: Callable[[Audio, int], None] | None = None,
    block_seconds: float = 30.0,
) -> int:
    """Decode into an int16 PCM spool file (atomically); call ``on_block(block, offset_samples)``.

    Returns the number of samples written.
    """
    spool.parent.mkdir(parents=True, exist_ok=True)
    tmp = spool.with_name(spool.name + ".part")
    total = 0
    with tmp.open("wb") as out:
        for block in decode_blocks(path, block_seconds):
            if on_block is not None:
                on_block(block, total)
            out.write(_to_int16(block).tobytes())
            total += block.size
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, spool)
    return total


def spool_samples(spool: Path) -> int:
    return spool.stat().st_size // 2


def read_spool(spool: Path, start: int, end: int) -> Audio:
    """Samples ``[start, end)`` of a spool file as float32, read without loading the rest."""
    total = spool_samples(spool)
    start, end = max(0, start), min(end, total)
    if end <= start:
        return np.zeros(0, dtype=np.float32)
    mm = np.memmap(spool, dtype=np.int16, mode="r", offset=start * 2, shape=(end - start,))
    try:
        return _to_float(np.array(mm))
    finally:
        del mm


def _to_float(pcm: npt.NDArray[np.int16]) -> Audio:
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32, copy=False)


def _to_int16(audio: Audio) -> npt.NDArray[np.int16]:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), no errno or call."""
    text = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return str(text).splitlines()[0][:200]


def encode_opus(src: Path, dst: Path, bitrate: int = 48_000) -> None:
    """``src``'s audio (decoded as the pipeline hears it: 16 kHz mono) as Ogg Opus in ``dst``,
    written to a temporary file and renamed: what a browser plays where it cannot play the
    original's format (48 kbit/s keeps speech clear; a 3-hour file is about 65 MB)."""
    import av

    temp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(temp), "w", format="ogg") as out:
            stream = out.add_stream("libopus", rate=48_000, layout="mono")
            stream.bit_rate = bitrate
            resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
            for block in decode_blocks(src):
                frame = av.AudioFrame.from_ndarray(
                    _to_int16(block)[None], format="s16", layout="mono"
                )
                frame.sample_rate = SAMPLE_RATE
                for converted in resampler.resample(frame):
                    for packet in stream.encode(converted):
                        out.mux(packet)
            for converted in resampler.resample(None):
                for packet in stream.encode(converted):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        os.replace(temp, dst)
    finally:
        temp.unlink(missing_ok=True)
