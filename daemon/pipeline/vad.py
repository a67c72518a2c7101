"""Speech regions with the Silero VAD that ships inside faster-whisper, and the chunk plan.

:class:`SpeechDetector` consumes decoded blocks one at a time (memory stays flat in file length)
and runs faster-whisper's ``get_speech_timestamps`` on each block, with the block's offset added;
regions that touch across a block boundary are joined.  :func:`plan_chunks` is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from daemon.pipeline.audio import SAMPLE_RATE, Audio


@dataclass(frozen=True)
class VadParams:
    threshold: float = 0.5
    min_silence_ms: int = 1000
    speech_pad_ms: int = 400
    max_speech_seconds: float = 60.0
    """A longer region is split at its last short silence (faster-whisper's rule)."""


@dataclass(frozen=True)
class Region:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Chunk:
    index: int
    regions: tuple[Region, ...]
    """Speech regions, in order; the chunk's audio is their samples joined end to end."""

    @property
    def start(self) -> float:
        return self.regions[0].start

    @property
    def end(self) -> float:
        return self.regions[-1].end

    @property
    def speech(self) -> float:
        return sum(r.duration for r in self.regions)


@dataclass
class SpeechDetector:
    params: VadParams
    join_gap: float = 0.1
    """Regions closer than this across a block boundary are one region."""
    regions: list[Region] = field(default_factory=list)

    def feed(self, block: Audio, offset_samples: int) -> None:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        if block.size == 0:
            return
        options = VadOptions(
            threshold=self.params.threshold,
            min_silence_duration_ms=self.params.min_silence_ms,
            speech_pad_ms=self.params.speech_pad_ms,
            max_speech_duration_s=self.params.max_speech_seconds,
        )
        for ts in get_speech_timestamps(block, options, sampling_rate=SAMPLE_RATE):
            region = Region(
                start=(offset_samples + int(ts["start"])) / SAMPLE_RATE,
                end=(offset_samples + int(ts["end"])) / SAMPLE_RATE,
            )
            last = self.regions[-1] if self.regions else None
            if (
                last is not None
                and region.start - last.end <= self.join_gap
                and region.end - last.start <= self.params.max_speech_seconds
            ):
                self.regions[-1] = Region(last.start, region.end)
            else:
                self.regions.append(region)


def plan_chunks(regions: list[Region], max_chunk_seconds: float) -> list[Chunk]:
    """Group consecutive speech regions into chunks of at most ``max_chunk_seconds`` of speech.

    Chunks are cut only between regions, i.e. in silences.  A region longer than the limit (which
    the VAD avoids by splitting) becomes a chunk of its own rather than being cut mid-speech.
    """
    chunks: list[Chunk] = []
    current: list[Region] = []
    speech = 0.0
    for region in regions:
        if region.duration <= 0:
            continue
        if current and speech + region.duration > max_chunk_seconds:
            chunks.append(Chunk(index=len(chunks), regions=tuple(current)))
            current, speech = [], 0.0
        current.append(region)
        speech += region.duration
    if current:
        chunks.append(Chunk(index=len(chunks), regions=tuple(current)))
    return chunks


def to_original_time(t: float, regions: tuple[Region, ...]) -> float:
    """Map a time in a chunk's joined audio back to the file's timeline (pure)."""
    elapsed = 0.0
    for i, region in enumerate(regions):
        if t <= elapsed + region.duration or i == len(regions) - 1:
            return region.start + min(max(t - elapsed, 0.0), region.duration)
        elapsed += region.duration
    return t  # no regions: nothing to map


def chunk_samples(chunk: Chunk) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of a chunk's regions."""
    return [(round(r.start * SAMPLE_RATE), round(r.end * SAMPLE_RATE)) for r in chunk.regions]


def plan_windows(
    duration: float, regions: list[Region], window_seconds: float
) -> list[tuple[float, float]]:
    """Diarization windows covering the whole file, cut near every ``window_seconds`` (pure).

    Each cut is placed in the middle of the silence (a gap between speech regions) nearest to
    its target, when one lies within a quarter window of it; otherwise at the target.  A file
    up to one and a half windows long is one window.
    """
    if duration <= window_seconds * 1.5:
        return [(0.0, duration)]
    gaps = [(a.end + b.start) / 2 for a, b in pairwise(regions) if b.start > a.end]
    cuts: list[float] = []
    target = window_seconds
    while target < duration - window_seconds / 2:
        near = [
            g
            for g in gaps
            if abs(g - target) <= window_seconds / 4
            and (not cuts or g > cuts[-1] + window_seconds / 2)
        ]
        cut = min(near, key=lambda g: abs(g - target)) if near else target
        cuts.append(cut)
        target = cut + window_seconds
    bounds = [0.0, *cuts, duration]
    return list(pairwise(bounds))
