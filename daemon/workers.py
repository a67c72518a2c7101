"""Running claimed jobs: warm models, the lease heartbeat, outputs, and the job's final state."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import modelstore, retry
from daemon.config import Config, SpeakerHints
from daemon.modelstore import ResolvedModel
from daemon.pipeline.asr import AsrModel
from daemon.pipeline.diarize import DiarizeParams
from daemon.pipeline.outputs import Transcript, rename_speakers, write_outputs
from daemon.pipeline.run import (
    Cancelled,
    JobInput,
    PipelineResult,
    StepCache,
    never,
    transcribe_file,
)
from daemon.profiles import asr_lanes
from daemon.profiles import resolve as resolve_profile
from daemon.store import JobRecord, Store, utcnow
from daemon.sysload import peak_rss, usable_cores

if TYPE_CHECKING:
    from daemon.pipeline.diarize import Diarizer

log = logging.getLogger(__name__)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass
class WarmModels:
    """Models of one process, loaded on first use and kept for later jobs."""

    cache_dir: Path
    allow_download: bool = False
    cpu_threads: int = 0
    loads: int = 0
    _resolved: dict[str, ResolvedModel] = field(default_factory=dict)
    _asr: dict[tuple[str, str, int], AsrModel] = field(default_factory=dict)
    _diarizers: dict[DiarizeParams, Diarizer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, name: str) -> ResolvedModel:
        with self._lock:
            if name not in self._resolved:
                self._resolved[name] = modelstore.resolve(name, self.cache_dir, self.allow_download)
            return self._resolved[name]

    def asr(self, resolved: ResolvedModel, compute_type: str, threads: int = 0) -> AsrModel:
        """The warm Whisper model for ``threads`` (split into lanes, see
        :func:`daemon.profiles.asr_lanes`); CTranslate2 fixes them when it loads."""
        threads = threads or self.cpu_threads
        lanes, per_lane = asr_lanes(threads) if threads else (1, 0)
        key = (resolved.identity, compute_type, threads)
        with self._lock:
            if key not in self._asr:
                started = time.perf_counter()
                self._asr[key] = AsrModel(resolved, compute_type, per_lane, lanes)
                self.loads += 1
                log.info(
                    "loaded model %s",
                    resolved.name,
                    extra={
                        "model": resolved.name,
                        "compute_type": compute_type,
                        "lanes": lanes,
                        "seconds": round(time.perf_counter() - started, 2),
                    },
                )
            return self._asr[key]

    def diarizer(self, params: DiarizeParams, threads: int = 0) -> Diarizer:
        """The warm diarization pipeline, set to use ``threads`` torch threads."""
        from daemon.pipeline.diarize import Diarizer

        with self._lock:
            if params not in self._diarizers:
                started = time.perf_counter()
                self._diarizers[params] = Diarizer(params)
                self.loads += 1
                log.info(
                    "loaded diarization pipeline",
                    extra={
                        "step": params.segmentation_step,
                        "seconds": round(time.perf_counter() - started, 2),
                    },
                )
            diarizer = self._diarizers[params]
        diarizer.threads = max(1, threads or self.cpu_threads or 1)
        return diarizer

    def widen(self, params: DiarizeParams, threads: int) -> None:
        """Let a running diarization take ``threads`` from its next batch on (ASR is done)."""
        with self._lock:
            diarizer = self._diarizers.get(params)
        if diarizer is not None:
            diarizer.threads = max(1, threads)

    @property
    def loaded(self) -> bool:
        return bool(self._asr or self._diarizers)

    def unload(self) -> None:
        """Drop every loaded model (after a long idle time); the next job loads them again."""
        with self._lock:
            self._asr.clear()
            self._diarizers.clear()
        import gc

        gc.collect()

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self._asr.values()) + sum(
            d.calls for d in self._diarizers.values()
        )


@contextmanager
def lease_keeper(store: Store, job_id: int, owner: str, lease_seconds: float) -> Any:
    """Renew the job's lease in the background while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_seconds / 3):
            if not store.heartbeat(job_id, owner, utcnow(), lease_seconds):
                log.warning("lost the lease of job %s", job_id, extra={"job": job_id})
                return

    thread = threading.Thread(target=beat, name=f"lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


HINT_KEYS = ("num_speakers", "min_speakers", "max_speakers")


def hints_for(config: Config, options: dict[str, Any]) -> SpeakerHints:
    """Speaker hints of a job: its own options (CLI or folder) first, then the global config."""
    return SpeakerHints(
        **{
            k: options.get(k) if options.get(k) is not None else getattr(config.diarization, k)
            for k in HINT_KEYS
        }
    )


def run_pipeline(
    config: Config,
    models: WarmModels,
    store: Store,
    path: Path,
    sha256: str,
    options: dict[str, Any],
    on_progress: Callable[[float], None] = lambda _p: None,
    clock: Callable[[], datetime] = utcnow,
    cache_only: bool = False,
    threads: int = 0,
    should_stop: Callable[[], bool] = never,
) -> PipelineResult:
    """One file through the cached pipeline with the profile, language and hints it asks for.

    ``threads`` is the worker's share of the cores (0: all usable ones).  With overlap on,
    ASR and diarization run side by side and split them; whichever finishes first hands its
    threads to the other (diarization takes more torch threads between batches; ASR opens
    more lanes, see :func:`daemon.profiles.asr_lanes`).  Otherwise each uses all of them in
    turn.  Never more threads than granted.
    """
    threads = threads or usable_cores()
    overlap = config.daemon.overlap_diarization and threads >= 2 and config.diarization.enabled
    asr_threads = threads - threads // 2 if overlap else threads
    diarize_threads = threads // 2 if overlap else threads
    # the model gets lanes for all the threads; beside diarization it uses only its share
    lanes, per_lane = asr_lanes(threads)
    name = str(options.get("profile") or config.pipeline.profile)
    profile = resolve_profile("balanced" if name == "auto" else name, config.profiles)
    resolved = models.resolve(profile.model)
    english = models.resolve(profile.english_model) if profile.english_model else None
    job = JobInput(
        path=path,
        sha256=sha256,
        profile=profile,
        language=str(options.get("language") or config.pipeline.language),
        model=resolved,
        hints=hints_for(config, options),
        diarize=config.diarization.enabled,
        window_seconds=config.diarization.window_seconds,
        overlap=overlap,
        english_model=english,
        asr_lanes=lanes,
        asr_open_lanes=max(1, asr_threads // per_lane),
    )
    return transcribe_file(
        job,
        StepCache(
            store=store,
            sha256=sha256,
            clock=clock,
            cache_only=cache_only,
            should_stop=should_stop,
        ),
        lambda: models.asr(resolved, profile.compute_type, threads),
        config.daemon.work_dir,
        on_progress,
        lambda: models.diarizer(profile.diarization, diarize_threads),
        (lambda: models.asr(english, profile.compute_type, threads)) if english else None,
        on_asr_done=lambda: models.widen(profile.diarization, threads),
    )


def write_job_outputs(
    config: Config,
    store: Store,
    job: JobRecord,
    transcript: Transcript,
    speaker_names: dict[str, str] | None = None,
) -> list[str]:
    """Write a job's transcript files, replacing its own earlier ones, never another's."""
    names = speaker_names if speaker_names is not None else job.options.get("speaker_names", {})
    own = set(job.outputs)
    return write_outputs(
        rename_speakers(transcript, dict(names)),
        Path(job.options.get("output_dir") or config.output.dir),
        Path(job.path).stem,
        config.output.formats,
        own=own,
        others=store.outputs_in_use() - own,
        timestamps_in_txt=config.output.timestamps_in_txt,
    )


LIGHTER_KEY = "oom_profile"
"""Job option set when a job ran out of memory: the lighter profile its retries run with."""


def retry_options(options: dict[str, Any], decision: retry.Decision) -> dict[str, Any] | None:
    """A job's options for its retry: unchanged (None), or with the lighter profile."""
    if decision.profile is None:
        return None
    return {**options, LIGHTER_KEY: decision.profile}


@dataclass
class Executor:
    """Processes one claimed job from start to its final state; never raises."""

    config: Config
    store: Store
    models: WarmModels
    owner: str
    clock: Callable[[], datetime] = utcnow
    should_stop: Callable[[], bool] = never
    """True asks the running job to stop at its next checkpoint (graceful shutdown)."""

    def execute(self, job: JobRecord, threads: int = 0, workers: int = 1) -> bool:
        """Run a claimed job to its final state; True when it ended done.

        ``threads``: this worker's share of the cores (0: all); ``workers``: how many workers
        the plan runs (recorded with the job's metrics).
        """
        started, cpu_started = time.perf_counter(), time.process_time()
        lease = self.config.daemon.lease_seconds
        last_beat = [0.0]

        def on_progress(p: float) -> None:
            t = time.perf_counter()
            if t - last_beat[0] >= 1.0 or p >= 1.0:
                last_beat[0] = t
                self.store.heartbeat(job.id, self.owner, self.clock(), lease, progress=p)

        log.info("job %s started", job.id, extra={"job": job.id, "path": job.path})
        try:
            with lease_keeper(self.store, job.id, self.owner, lease):
                result = self._run(job, on_progress, threads)
                outputs = self._write(job, result)
        except Cancelled:
            released = self.store.release(job.id, self.owner, self.clock())
            log.info(
                "job %s stopped at a checkpoint; it resumes from its finished steps",
                job.id,
                extra={"job": job.id, "released": released},
            )
            return False
        except Exception as exc:  # a bad job must never stop the daemon
            decision = retry.decide(
                exc, job.attempts, self.config.daemon.max_attempts, self.clock(), job.profile
            )
            if decision.retry and decision.run_after is not None:
                self.store.retry(
                    job.id,
                    self.owner,
                    self.clock(),
                    decision.message,
                    decision.run_after,
                    options=retry_options(job.options, decision),
                )
                log.warning(
                    "job %s will retry: %s",
                    job.id,
                    decision.message,
                    extra={"job": job.id, "error": decision.message},
                )
            else:
                self.store.fail(job.id, self.owner, self.clock(), decision.message)
                self._drop_spool(job)
                log.error(
                    "job %s failed: %s",
                    job.id,
                    decision.message,
                    extra={"job": job.id, "error": decision.message},
                )
            return False
        wall = time.perf_counter() - started
        metrics = {
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(time.process_time() - cpu_started, 3),
            "audio_seconds": round(result.audio_seconds, 3),
            "rtf": round(wall / result.audio_seconds, 4) if result.audio_seconds else None,
            "steps": result.stats.as_dict(),
            "model_loads": self.models.loads,
            "profile": result.transcript.profile,
            "workers": workers,
            "threads": threads or usable_cores(),
            "peak_rss": peak_rss(),
            "pid": os.getpid(),
        }
        self.store.finish(job.id, self.owner, self.clock(), outputs, metrics)
        self._drop_spool(job)
        log.info("job %s done", job.id, extra={"job": job.id, **metrics})
        return True

    def _run(
        self, job: JobRecord, on_progress: Callable[[float], None], threads: int = 0
    ) -> PipelineResult:
        options = dict(job.options)
        if options.get(LIGHTER_KEY):  # ran out of memory before: the lighter profile
            options["profile"] = options[LIGHTER_KEY]
        if job.profile and not options.get("profile"):
            options["profile"] = job.profile
        return run_pipeline(
            self.config,
            self.models,
            self.store,
            Path(job.path),
            job.sha256,
            options,
            on_progress,
            self.clock,
            threads=threads,
            should_stop=self.should_stop,
        )

    def _write(self, job: JobRecord, result: PipelineResult) -> list[str]:
        return write_job_outputs(self.config, self.store, job, result.transcript)

    def _drop_spool(self, job: JobRecord) -> None:
        with suppress(OSError):
            (self.config.daemon.work_dir / f"{job.sha256}.pcm").unlink()
