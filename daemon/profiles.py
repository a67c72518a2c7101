"""Processing profiles: named bundles of model and pipeline parameters (pure).

``fast`` / ``balanced`` / ``quality`` trade speed for accuracy; the config may override any field
of a bundle (``[profiles.<name>]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.config import ProfileOverride
from daemon.pipeline.diarize import DiarizeParams
from daemon.pipeline.vad import VadParams
from daemon.sysload import LoadSnapshot


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    compute_type: str
    beam_size: int
    max_chunk_seconds: float
    vad: VadParams
    diarization: DiarizeParams
    """segmentation_step 0.1 without chunked embeddings is pyannote's stock pipeline (the
    baseline of bench/)."""
    english_model: str = ""
    """When set, English speech (detected by ``model``, or forced) is transcribed by this
    lighter English-only model instead."""


BUILTIN: dict[str, Profile] = {
    "fast": Profile(
        "fast",
        model="base",
        compute_type="int8",
        beam_size=1,
        max_chunk_seconds=30.0,
        vad=VadParams(max_speech_seconds=30.0),
        diarization=DiarizeParams(segmentation_step=0.5, chunked_embeddings=True),
        english_model="tiny.en",
    ),
    "balanced": Profile(
        "balanced",
        model="base",
        compute_type="int8",
        beam_size=2,
        max_chunk_seconds=60.0,
        vad=VadParams(max_speech_seconds=60.0),
        diarization=DiarizeParams(segmentation_step=0.3, chunked_embeddings=True),
    ),
    "quality": Profile(
        "quality",
        model="base",
        compute_type="int8",
        beam_size=5,
        max_chunk_seconds=90.0,
        vad=VadParams(max_speech_seconds=90.0),
        # pyannote's stock step; one CAM++ pass per window gives the same embeddings as its
        # pass per window and speaker (same DER on all 10 eval files) for a third of the work
        diarization=DiarizeParams(segmentation_step=0.1, chunked_embeddings=True),
    ),
}


def resolve(name: str, overrides: Mapping[str, ProfileOverride]) -> Profile:
    """The built-in bundle ``name`` with the config's overrides applied."""
    base = BUILTIN[name]
    override = overrides.get(name)
    if override is None:
        return base
    vad_changes: dict[str, Any] = {
        "threshold": override.vad_threshold,
        "min_silence_ms": override.min_silence_ms,
        "speech_pad_ms": override.speech_pad_ms,
        "max_speech_seconds": override.max_chunk_seconds,
    }
    top: dict[str, Any] = {
        "model": override.model,
        "english_model": override.english_model,
        "compute_type": override.compute_type,
        "beam_size": override.beam_size,
        "max_chunk_seconds": override.max_chunk_seconds,
    }
    diarization_changes: dict[str, Any] = {
        "threshold": override.diarization_threshold,
        "segmentation_step": override.segmentation_step,
    }
    vad = dataclasses.replace(base.vad, **{k: v for k, v in vad_changes.items() if v is not None})
    diarization = dataclasses.replace(
        base.diarization, **{k: v for k, v in diarization_changes.items() if v is not None}
    )
    return dataclasses.replace(
        base,
        vad=vad,
        diarization=diarization,
        **{k: v for k, v in top.items() if v is not None},
    )


# ---------------------------------------------------------------------- planning (pure)
LANE_THREADS_FROM = 4
"""From this many ASR threads on, lanes get two threads each (CTranslate2 still scales from one
to two threads; past that, more lanes would multiply its per-replica buffers)."""


def asr_lanes(threads: int) -> tuple[int, int]:
    """(lanes, threads per lane) for ASR granted ``threads``: chunks of one file run side by
    side on CTranslate2 replicas sharing the weights, rather than one chunk on all threads.

    Measured on 2 cores (bench/lanes.py, batched ASR): 2 lanes x 1 thread were 1.01-1.12x as
    fast as 1 x 2, for about 0.16 GB more memory.  lanes x threads never exceeds the grant.
    """
    threads = max(1, threads)
    if threads < LANE_THREADS_FROM:
        return threads, 1
    return threads // 2, 2


@dataclass(frozen=True)
class QueueFacts:
    queued: int
    """Jobs waiting (this one included)."""
    queued_audio_seconds: float
    """Their audio, as far as known."""
    running: int = 0


@dataclass(frozen=True)
class FileFacts:
    duration: float
    channels: int = 1
    sample_rate: int = 16000
    speech_share: float | None = None
    """Share of the file that is speech (from the VAD), when known."""


@dataclass(frozen=True)
class PlannerSettings:
    profile: str = "auto"
    """"auto" lets the planner choose; a profile name fixes it."""
    max_workers: int = 0
    """0: as many as the granted cores allow."""
    ram_per_worker: int = 1_500_000_000
    """Bytes one worker needs with its models loaded (measured peak, rounded up)."""
    backlog_fast_seconds: float = 3600.0
    """Queued speech beyond which everything goes through the fast profile."""
    quality_max_seconds: float = 1800.0
    """Longest file the quality profile is chosen for automatically."""
    idle_other_cores: float = 0.3
    """Other programs using less CPU than this count as an idle machine."""


@dataclass(frozen=True)
class Plan:
    profile: str
    workers: int
    threads: int
    """Threads per worker; workers x threads never exceeds the granted cores."""
    reason: str


def choose(
    snapshot: LoadSnapshot,
    queue: QueueFacts,
    file: FileFacts | None,
    settings: PlannerSettings,
    now: datetime,
    requested: str | None = None,
) -> Plan:
    """Profile, worker count and threads for the next job, from load, queue and file (pure).

    Cores granted are those other programs leave free.  Several workers only when several
    files wait; each worker gets the remaining cores as threads.  Profile: an explicit request
    always wins; short memory or a long backlog -> fast; an idle machine, a short queue and a
    file of reasonable length -> quality; otherwise balanced.  A snapshot older than a minute
    is treated as a loaded machine (the planner does not trust stale numbers).
    """
    stale = (now - snapshot.taken_at).total_seconds() > 60
    other = float(snapshot.cores) / 2 if stale else snapshot.other_cores
    granted = max(1, min(snapshot.cores, int(snapshot.cores - other + 0.25)))
    by_ram = max(1, snapshot.available_ram // max(1, settings.ram_per_worker))
    cap = settings.max_workers or granted
    parallel_files = max(1, queue.queued + queue.running)
    workers = max(1, min(granted, by_ram, cap, parallel_files))
    threads = max(1, granted // workers)

    speech = queue.queued_audio_seconds
    if file is not None and file.speech_share is not None:
        speech = max(0.0, speech - file.duration * (1 - file.speech_share))
    if requested and requested != "auto":
        profile, reason = requested, "requested"
    elif settings.profile != "auto":
        profile, reason = settings.profile, "configured"
    elif snapshot.available_ram < settings.ram_per_worker:
        profile, reason = "fast", "low memory"
    elif speech > settings.backlog_fast_seconds:
        profile, reason = "fast", f"backlog of {speech / 60:.0f} min"
    elif (
        not stale
        and other < settings.idle_other_cores
        and queue.queued <= 1
        and (file is None or file.duration <= settings.quality_max_seconds)
    ):
        profile, reason = "quality", "idle machine, short queue"
    else:
        profile, reason = "balanced", "default"
    if other >= 0.5:
        reason += f"; other programs use {other:.1f} cores"
    return Plan(
        profile=profile,
        workers=workers,
        threads=threads,
        reason=f"{reason}; {workers}x{threads} threads on {granted} free cores",
    )
