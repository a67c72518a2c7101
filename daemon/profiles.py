"""Processing profiles: named bundles of model and pipeline parameters (pure).

``fast`` / ``balanced`` / ``quality`` trade speed for accuracy; the config may override any field
of a bundle (``[profiles.<name>]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.config import PROFILE_NAMES, Config, ProfileOverride
from daemon.pipeline.asr import WINDOW_SECONDS
from daemon.pipeline.diarize import DiarizeParams
from daemon.pipeline.vad import VadParams


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
    cuda_compute_type: str = "float16"
    """Whisper's compute type on an NVIDIA GPU (``compute_type`` is the CPU's column)."""


BUILTIN: dict[str, Profile] = {
    "fast": Profile(
        "fast",
        model="base",
        compute_type="int8",
        beam_size=1,
        max_chunk_seconds=30.0,
        vad=VadParams(max_speech_seconds=30.0),
        diarization=DiarizeParams(
            segmentation_step=0.5, chunked_embeddings=True, shared_frames=True
        ),
        english_model="tiny.en",
        cuda_compute_type="int8_float16",
    ),
    "balanced": Profile(
        "balanced",
        model="base",
        compute_type="int8",
        beam_size=2,
        max_chunk_seconds=60.0,
        vad=VadParams(max_speech_seconds=60.0),
        diarization=DiarizeParams(
            segmentation_step=0.3, chunked_embeddings=True, shared_frames=True
        ),
    ),
    "quality": Profile(
        "quality",
        model="base",
        compute_type="int8",
        beam_size=5,
        max_chunk_seconds=90.0,
        vad=VadParams(max_speech_seconds=90.0),
        # pyannote's stock step; one CAM++ pass per window pooled per speaker gives the same
        # embeddings as its pass per window and speaker, for a third of the work
        diarization=DiarizeParams(
            segmentation_step=0.1, chunked_embeddings=True, shared_frames=True
        ),
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
        "cuda_compute_type": override.cuda_compute_type,
        "beam_size": override.beam_size,
        "max_chunk_seconds": override.max_chunk_seconds,
    }
    diarization_changes: dict[str, Any] = {
        "threshold": override.diarization_threshold,
        "merge_distance": override.diarization_merge_distance,
        "lone_voice_share": override.diarization_lone_voice_share,
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


def models_in_use(config: Config) -> list[str]:
    """The Whisper models the configured profiles (and folder options) may run."""
    names = set(PROFILE_NAMES) if config.pipeline.profile == "auto" else {config.pipeline.profile}
    names |= {o.profile for o in config.folders.values() if o.profile}
    profiles = [resolve(n, config.profiles) for n in names]
    return sorted({p.model for p in profiles} | {p.english_model for p in profiles} - {""})


GPU_WINDOW_BYTES = 256 * 2**20
"""GPU memory given to each 30-s window of a batched Whisper call (the activations of a large
model in float16, with room; an estimate: no GPU has run here)."""
GPU_MAX_WINDOWS = 16
GPU_UNKNOWN_WINDOWS = 8
"""Windows per batch where the GPU's memory is not known (no NVML)."""


def gpu_batch_windows(total_bytes: int | None) -> int:
    """How many 30-s windows one batched Whisper call takes on a GPU of ``total_bytes`` (pure):
    half its memory at :data:`GPU_WINDOW_BYTES` each (the rest for the models and others),
    between 1 and :data:`GPU_MAX_WINDOWS`.  The GPU's size, not what is free now: the chunk
    plan is part of the cached steps' keys, and must not change from run to run."""
    if total_bytes is None:
        return GPU_UNKNOWN_WINDOWS
    return max(1, min(GPU_MAX_WINDOWS, total_bytes // 2 // GPU_WINDOW_BYTES))


def on_device(profile: Profile, kind: str, gpu_memory: int | None = None) -> Profile:
    """The profile as it runs on a device kind ("cpu" or "cuda"), pure: its compute type is
    that device's column of the table; on a GPU (of ``gpu_memory`` bytes) its chunks hold as
    many 30-s windows as one batch takes (:func:`gpu_batch_windows`), never fewer than on the
    CPU (the ASR batches a chunk's windows together: on a CPU two lanes of one or two windows
    pay, on a GPU one wide batch)."""
    if kind != "cuda":
        return profile
    seconds = max(profile.max_chunk_seconds, WINDOW_SECONDS * gpu_batch_windows(gpu_memory))
    return dataclasses.replace(
        profile,
        compute_type=profile.cuda_compute_type,
        max_chunk_seconds=seconds,
        vad=dataclasses.replace(profile.vad, max_speech_seconds=seconds),
    )
