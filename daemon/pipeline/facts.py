"""What a file sounds like, measured cheaply at intake for the planner: how much of it is speech
(Silero VAD, as the pipeline's own), how loud the speech is and how loud the noise under it.

Only a sample is decoded: up to :data:`SAMPLE_SECONDS` in :data:`SAMPLE_PIECES` stretches spread
over the file (PyAV seeks to each), so the cost does not grow with the file's length.  The levels
come from librosa's frame RMS: the speech level is the mean power of the frames the VAD calls
speech, the noise floor a low percentile of every frame's level (the pauses between words and
sentences), and the signal-to-noise ratio their difference.  :func:`levels` is pure.

The frame RMS is librosa's ``feature.rms(center=False)``, computed with numpy (the tests hold it
to librosa's): importing librosa costs the daemon's main process about 3 s of CPU and numba and
scipy.signal, for one mean of squares.  The VAD is faster-whisper's Silero model and rule run
by :mod:`daemon.pipeline.silero`, which imports neither faster-whisper nor CTranslate2: this
module runs in the daemon's main process.  :func:`warm` loads it at start, off the scheduler's
tick, so the first file's intake does not wait for it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from daemon.errors import DecodeError
from daemon.jobs import AudioFacts
from daemon.pipeline import silero
from daemon.pipeline.audio import SAMPLE_RATE, Audio, decode_blocks, probe

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 60.0
SAMPLE_PIECES = 3
FRAME = 400
"""25 ms frames at 16 kHz, 10 ms apart."""
HOP = 160
NOISE_PERCENTILE = 10.0
FLOOR_DB = -100.0
"""Levels are clamped here (digital silence has no level)."""
VAD = silero.VadRule(min_silence_ms=300, speech_pad_ms=100)
"""Tight: a share of speech, not cuts."""


def levels(audio: Audio, speech: Sequence[tuple[int, int]]) -> tuple[float | None, float | None]:
    """(speech level, noise floor) in dBFS of 16 kHz audio whose speech lies in the sample
    ranges ``speech``; the speech level is None where there is none (pure)."""
    if audio.size < FRAME:
        return None, None
    power = np.maximum(frame_power(audio), 10 ** (FLOOR_DB / 10))
    db = 10 * np.log10(power)
    noise = float(np.percentile(db, NOISE_PERCENTILE))
    mask = np.zeros(len(power), dtype=bool)
    for start, end in speech:
        mask[start // HOP : max(start // HOP + 1, (end - FRAME) // HOP + 1)] = True
    if not mask.any():
        return None, noise
    return float(10 * np.log10(power[mask].mean())), noise


def frame_power(audio: Audio) -> np.ndarray:
    """Mean square of each :data:`FRAME`-sample frame, :data:`HOP` apart (no padding)."""
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), FRAME)[::HOP]
    return np.asarray(np.mean(frames**2, axis=1))


def warm() -> None:
    """Load what :func:`measure` needs (the Silero VAD), so that its first call is quick."""
    try:
        silero.session()
    except Exception as exc:  # measuring copes without it (and says so, per file)
        log.warning("cannot load the VAD for file facts: %s", exc)


def measure(path: Path) -> AudioFacts:
    """The facts of one file; never raises (it runs in the intake): only its duration, or
    nothing, where it cannot be decoded (the pipeline reports why, with the job)."""
    try:
        duration = probe(path).duration or None
    except Exception as exc:  # DecodeError, OSError, or whatever a damaged header provokes
        log.debug("no facts for %s: %s", path, exc)
        return AudioFacts(duration=None)
    try:
        pieces = sample(path, duration)
        measured = facts_of(duration, pieces)
    except Exception as exc:
        log.warning("could not measure %s: %s", path, exc, extra={"path": str(path)})
        return AudioFacts(duration=duration)
    if measured.speech_share == 0.0 and not whole(duration):
        # silence in the sampled stretches says nothing of the rest of a long file
        return dataclasses.replace(measured, speech_share=None)
    return measured


def whole(duration: float | None) -> bool:
    """Whether :func:`sample` takes all of a file of this length."""
    return duration is None or duration <= SAMPLE_SECONDS * 1.5


def facts_of(duration: float | None, pieces: Sequence[Audio]) -> AudioFacts:
    """The facts from sampled stretches of a file (each one VAD'd and levelled on its own)."""
    total = sum(p.size for p in pieces)
    if total < FRAME:
        return AudioFacts(duration=duration)
    joined, spans, offset = [], [], 0
    for p in pieces:
        if p.size == 0:
            continue
        for start, end in silero.speech_timestamps(p, VAD):
            spans.append((offset + start, offset + end))
        joined.append(p)
        offset += p.size
    speech_db, noise_db = levels(np.concatenate(joined), spans)
    share = sum(e - s for s, e in spans) / total
    return AudioFacts(duration, min(1.0, share), _finite(speech_db), _finite(noise_db))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def sample(path: Path, duration: float | None) -> list[Audio]:
    """Up to :data:`SAMPLE_SECONDS` of 16 kHz mono audio: the whole file when short (or of
    unknown length), else :data:`SAMPLE_PIECES` stretches spread over it."""
    if duration is None or whole(duration):
        return [_first(path, SAMPLE_SECONDS * 1.5)]
    piece = SAMPLE_SECONDS / SAMPLE_PIECES
    starts = [duration * (i + 0.5) / SAMPLE_PIECES - piece / 2 for i in range(SAMPLE_PIECES)]
    return [_stretch(path, start, piece) for start in starts]


def _first(path: Path, seconds: float) -> Audio:
    out, have = [], 0
    for block in decode_blocks(path, block_seconds=10.0):
        out.append(block)
        have += block.size
        if have >= seconds * SAMPLE_RATE:
            break
    return np.concatenate(out)[: int(seconds * SAMPLE_RATE)] if out else np.zeros(0, np.float32)


def _stretch(path: Path, start: float, seconds: float) -> Audio:
    """``seconds`` of audio from about ``start`` (PyAV seeks to the nearest point before)."""
    import av

    want = int(seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    out: list[Audio] = []
    have = 0
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            base = stream.time_base
            origin = float(stream.start_time * base) if stream.start_time and base else 0.0
            if base is not None:  # on the audio stream (a video's keyframes are sparse)
                container.seek(int((start + origin) / base), stream=stream, any_frame=False)
            else:
                container.seek(int((start + origin) * 1_000_000), any_frame=False)
            for frame in container.decode(stream):
                skip = 0
                at = None if frame.time is None else frame.time - origin
                if at is not None and at < start:
                    skip = int((start - at) * SAMPLE_RATE)
                for r in resampler.resample(frame):
                    a = r.to_ndarray().reshape(-1).astype(np.float32)[skip:]
                    skip = 0
                    out.append(np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0), -1, 1))
                    have += a.size
                if have >= want:
                    break
    except (av.error.FFmpegError, ValueError, IndexError, OverflowError) as exc:
        raise DecodeError(f"cannot sample the audio: {exc}") from None
    return np.concatenate(out)[:want] if out else np.zeros(0, np.float32)
