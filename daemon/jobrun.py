"""One file through the cached pipeline as a job runs it: with the job's profile, its warm
models, its speaker hints and vocabulary, and its share of the threads; and the spool it runs
from."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from daemon import voices
from daemon.config import Config, SpeakerHints, Vocabulary
from daemon.jobs import JobOptions
from daemon.modelstore import file_sha256
from daemon.pipeline import spool as spool_mod
from daemon.pipeline.cache import StepCache, never
from daemon.pipeline.diarize import WEIGHTS_ID
from daemon.pipeline.merge import WindowDiarization
from daemon.pipeline.run import (
    JobInput,
    Loaders,
    PipelineResult,
    diarize_file,
    transcribe_file,
)
from daemon.planner import profile_to_run, requested_profile
from daemon.profiles import Profile, on_device
from daemon.profiles import resolve as resolve_profile
from daemon.store import Store, utcnow
from daemon.sysload import usable_cores
from daemon.threads import split as split_threads
from daemon.warm import WarmModels

log = logging.getLogger(__name__)


def hints_for(config: Config, options: JobOptions) -> SpeakerHints:
    """Speaker hints of a job: its own options (CLI or folder) first, then the global config."""
    d = config.diarization
    return SpeakerHints(
        num_speakers=d.num_speakers if options.num_speakers is None else options.num_speakers,
        min_speakers=d.min_speakers if options.min_speakers is None else options.min_speakers,
        max_speakers=d.max_speakers if options.max_speakers is None else options.max_speakers,
    )


def vocabulary_for(config: Config, options: JobOptions) -> Vocabulary:
    """A job's initial prompt and hotwords: its own (CLI or folder) first, then ``[pipeline]``."""
    p = config.pipeline
    return Vocabulary(
        initial_prompt=p.initial_prompt
        if options.initial_prompt is None
        else options.initial_prompt,
        hotwords=p.hotwords if options.hotwords is None else options.hotwords,
    )


def run_pipeline(
    config: Config,
    models: WarmModels,
    store: Store,
    path: Path,
    sha256: str,
    options: JobOptions,
    *,
    previous_profile: str | None = None,
    threads: int = 0,
    spool_key: str = "",
    on_progress: Callable[[float], None] = lambda _p: None,
    clock: Callable[[], datetime] = utcnow,
    cache_only: bool = False,
    should_stop: Callable[[], bool] = never,
    profile: Profile | None = None,
) -> PipelineResult:
    """One file through the cached pipeline with the profile, language, hints and threads it
    gets (``threads`` 0: every usable core; see :func:`daemon.threads.split`).
    ``previous_profile``: the one the job was claimed or last ran with; ``spool_key`` names its
    spool (:func:`daemon.pipeline.spool.job_key`; default: this process's own)."""
    if profile is None:  # given only by a benchmark's ablation
        asked = requested_profile(options, previous_profile)
        profile = resolve_profile(profile_to_run(asked, config.pipeline.profile), config.profiles)
    job, loaders = _job_input(config, models, path, sha256, options, profile, threads)
    cache = StepCache(store.results, sha256, clock, cache_only=cache_only, should_stop=should_stop)
    return transcribe_file(
        job,
        cache,
        loaders,
        spool_mod.Spool(spool_path(config, sha256, spool_key), path),
        on_progress,
        on_asr_done=lambda: models.widen(profile.diarization, job.threads.threads),
    )


def speakers_of_file(
    config: Config,
    models: WarmModels,
    store: Store,
    path: Path,
    sha256: str,
    on_progress: Callable[[float], None] = lambda _p: None,
    profile_name: str = "balanced",
) -> WindowDiarization:
    """Only the speakers of one file (turns and voice prints), with a profile's diarization
    (balanced: as voices are enrolled) and every usable core, through the step cache."""
    profile = resolve_profile(profile_name, config.profiles)
    job, loaders = _job_input(config, models, path, sha256, JobOptions(), profile, 0)
    cache = StepCache(store.results, sha256, utcnow)
    spool = spool_mod.Spool(spool_path(config, sha256), path)
    try:
        return diarize_file(job, cache, loaders, spool, on_progress)
    finally:
        spool_mod.drop(spool_path(config, sha256))


REFERENCE_LEAST_SECONDS = 1.5
"""A known speaker's clip with less speech than this names nobody."""


def reference_voices(
    config: Config, models: WarmModels, store: Store, known: tuple[tuple[str, str], ...]
) -> list[voices.Voice]:
    """The voices of a request's known speakers: each clip's main speaker's voice print
    (diarized through the step cache, as an enrolled voice's recordings are).  A clip that is
    gone, or holds too little speech, names nobody (said in the log)."""
    out = []
    for name, clip in known:
        path = Path(clip)
        if not path.is_file():
            log.warning("known speaker %s: clip %s is gone", name, clip, extra={"clip": clip})
            continue
        found = speakers_of_file(config, models, store, path, file_sha256(path))
        speech: dict[str, float] = {}
        for t in found.turns:
            speech[t.speaker] = speech.get(t.speaker, 0.0) + (t.end - t.start)
        main = voices.main_speaker(speech, found.centroids)
        if main is None or main.seconds < REFERENCE_LEAST_SECONDS:
            log.warning(
                "known speaker %s: too little speech in the clip to know the voice",
                name,
                extra={"clip": clip},
            )
            continue
        out.append(
            voices.Voice(name, found.centroids[main.label], WEIGHTS_ID, main.seconds, (clip,))
        )
    return out


def _job_input(
    config: Config,
    models: WarmModels,
    path: Path,
    sha256: str,
    options: JobOptions,
    profile: Profile,
    threads: int,
) -> tuple[JobInput, Loaders]:
    """A file's job as the pipeline takes it, and loaders of its (warm) models; the profile
    as it runs on the models' device (its compute type from that device's column, on a GPU
    its batch from the GPU's memory)."""
    profile = on_device(profile, models.device.kind, models.gpu_memory())
    split = split_threads(
        threads or usable_cores(), config.daemon.overlap_diarization, config.diarization.enabled
    )
    resolved = models.resolve(profile.model)
    english = models.resolve(profile.english_model) if profile.english_model else None
    job = JobInput(
        path=path,
        sha256=sha256,
        profile=profile,
        language=options.language or config.pipeline.language,
        model=resolved,
        hints=hints_for(config, options),
        diarize=config.diarization.enabled,
        window_seconds=config.diarization.window_seconds,
        english_model=english,
        threads=split,
        vocabulary=vocabulary_for(config, options),
        device=models.device.kind,
        diarize_device="cuda" if models.device.diarization_on_gpu else "cpu",
        task=options.task or "transcribe",
    )
    # the ASR model gets lanes for all the threads; beside diarization it uses only its share
    loaders = Loaders(
        asr=lambda: models.asr(resolved, profile.compute_type, split.threads),
        english=(lambda: models.asr(english, profile.compute_type, split.threads))
        if english
        else None,
        diarizer=lambda: models.diarizer(profile.diarization, split.diarize),
    )
    return job, loaders


def spool_path(config: Config, sha256: str, key: str = "") -> Path:
    """The spool of content ``sha256`` for ``key``; no key: this process's own."""
    return spool_mod.spool_path(config.daemon.work_dir, sha256, key or f"p{os.getpid()}")
