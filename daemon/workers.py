"""Running claimed jobs: the worker process's body, the lease heartbeat, the pipeline with the
job's profile and threads, outputs, and the job's final state."""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon import db, logs, placement, retry, voices
from daemon.config import Config, FolderOptions, SpeakerHints, Vocabulary
from daemon.errors import Cancelled, InputRemoved
from daemon.jobs import JobOptions, JobRecord, Lease
from daemon.pipeline import spool as spool_mod
from daemon.pipeline.cache import StepCache, never
from daemon.pipeline.cues import CueRules
from daemon.pipeline.diarize import WEIGHTS_ID
from daemon.pipeline.merge import WindowDiarization
from daemon.pipeline.outputs import Transcript, rename_speakers, write_outputs
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
from daemon.store import Store, open_store, utcnow
from daemon.sysload import bound_malloc_arenas, peak_rss, usable_cores
from daemon.threads import split as split_threads
from daemon.threads import worker_env
from daemon.warm import WarmModels

log = logging.getLogger(__name__)


def owner_id(node: str) -> str:
    """The lease owner prefix of this daemon: ``node:pid:thread``."""
    return f"{node}:{os.getpid()}:{threading.get_ident()}"


@dataclass(frozen=True)
class Task:
    job: JobRecord
    owner: str
    workers: int = 1
    """How many workers the plan runs (recorded with the job's metrics)."""
    place: tuple[Path, str] | None = None
    """Where its transcripts go (:func:`output_place` of the daemon's config in force: a
    reloaded one reaches the workers this way)."""


@dataclass(frozen=True)
class Report:
    worker: int
    job_id: int
    ok: bool
    pid: int
    model_loads: int
    failure: str = ""
    """The reason class of the attempt's error (:func:`daemon.retry.failure_class`), if any."""


def worker_main(
    index: int, config: Config, threads: int, tasks: Any, reports: Any, cancel: Any, parent: int
) -> None:
    """Body of a worker process (spawned: nothing heavy is inherited) granted ``threads``.

    A running job stops at its next checkpoint (and releases its lease) when the pool's
    ``cancel`` event is set, when this process gets SIGTERM (systemd may signal the whole
    group), or when the parent has died (its replacement will claim the job).  ``parent`` is
    passed in: asking os.getppid() here would be too late if the parent died meanwhile.
    """
    terminated = threading.Event()
    # what a terminal sends the whole group (Ctrl-C, Ctrl-\, hang-up) and the user signals
    # are the parent's to handle: it stops or reloads us
    for ignored in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(ignored, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _s, _f: terminated.set())

    def should_stop() -> bool:
        return terminated.is_set() or cancel.is_set() or os.getppid() != parent

    os.environ.update(worker_env(threads))  # before CTranslate2 and torch load
    bound_malloc_arenas()
    logs.setup(os.environ.get("TRANSCRIBD_LOG_LEVEL", "INFO"))
    store = open_store(config, migrate=False)
    models = WarmModels.of(config)
    idle_since = time.monotonic()
    while True:
        try:
            task: Task | None = tasks.get(timeout=5.0)
        except queue.Empty:
            if os.getppid() != parent or terminated.is_set():
                return  # orphaned, or told to go: nothing more will come
            if models.loaded and time.monotonic() - idle_since > config.daemon.model_idle_seconds:
                models.unload()
                log.info("worker %d unloaded idle models", index, extra={"worker": index})
            continue
        if task is None:
            return
        executor = Executor(config, store, models, task.owner, threads, should_stop=should_stop)
        try:
            ok = executor.execute(task.job, workers=task.workers, place=task.place)
        except Exception as exc:  # the database went away while the job ended
            if not db.unreachable(exc):
                raise
            log.warning(
                "job %s: the database is unreachable (%s); its lease lapses and it resumes",
                task.job.id,
                type(exc).__name__,
                extra={"job": task.job.id},
            )
            ok = False
            executor.failure = "database"
        idle_since = time.monotonic()
        reports.put(Report(index, task.job.id, ok, os.getpid(), models.loads, executor.failure))


@contextmanager
def lease_keeper(
    store: Store, lease: Lease, lease_seconds: float, lost: threading.Event
) -> Iterator[None]:
    """Renew the job's lease in the background while the body runs; ``lost`` is set once the
    lease is lost: the job was superseded or recovered after a stall (a heartbeat changed no
    row), or no heartbeat reached the database for as long as a lease lasts (another node
    may have taken the job by then)."""
    stop = threading.Event()
    job_id = lease.job_id

    def beat() -> None:
        renewed = time.monotonic()
        while not stop.wait(lease_seconds / 3):
            try:
                held = store.heartbeat(lease, store.now(), lease_seconds)
            except Exception as exc:
                if not db.unreachable(exc):
                    raise
                if time.monotonic() - renewed < lease_seconds:
                    log.warning(
                        "job %s: database unreachable, lease not renewed (%s)",
                        job_id,
                        type(exc).__name__,
                        extra={"job": job_id},
                    )
                    continue
                held = False
            if not held:
                log.warning("lost the lease of job %s", job_id, extra={"job": job_id})
                lost.set()
                return
            renewed = time.monotonic()

    thread = threading.Thread(target=beat, name=f"lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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


def write_job_outputs(
    config: Config,
    store: Store,
    job: JobRecord,
    transcript: Transcript,
    names: dict[str, str],
    place: tuple[Path, str] | None = None,
) -> list[str]:
    """Write a job's transcript files (speakers named by ``names``) where ``place`` says (the
    folder and name template; default: :func:`output_place` of this config), replacing its
    own earlier ones and those of the jobs it superseded at its path, never another's; those
    earlier files that now have other names (another language, layout or name) go."""
    own = set(job.outputs) | store.superseded_outputs(job.path, job.id)
    folder, name = place or output_place(config, Path(job.path))
    others = store.outputs_in_use() - own
    written = write_outputs(
        rename_speakers(transcript, names),
        folder,
        Path(job.path).stem,
        config.output.formats,
        own=own,
        others=others,
        timestamps_in_txt=config.output.timestamps_in_txt,
        cues=cue_rules(config),
        name=name,
    )
    for stale in own - set(written) - others:
        Path(stale).unlink(missing_ok=True)
    return written


def folder_options(config: Config, source: Path) -> FolderOptions:
    """The options of the innermost ``[folders."..."]`` holding ``source`` (none set when no
    configured folder holds it)."""
    options = {placement.local_path(f): o for f, o in config.folders.items()}
    inner = placement.innermost(placement.local_path(source), options)
    return options[Path(inner)] if inner is not None else FolderOptions()


def output_place(config: Config, source: Path) -> tuple[Path, str]:
    """The folder and name template of ``source``'s transcripts: ``[output]`` layout and name,
    or those of the innermost ``[folders."..."]`` holding it (see :mod:`daemon.placement`)."""
    real = placement.local_path(source)
    opts = folder_options(config, source)
    watched = [placement.local_path(f) for f in config.watch.folders]
    layout = opts.layout or config.output.layout
    folder = placement.output_folder(real, layout, placement.local_path(config.output.dir), watched)
    return Path(folder), opts.name or config.output.name


def voice_matches(
    config: Config, store: Store, source: Path, prints: dict[str, tuple[float, ...]]
) -> list[voices.Match]:
    """Which of a job's speakers are enrolled voices (none where ``[voices]`` or the file's
    folder turns naming off)."""
    enabled = folder_options(config, source).voices
    if not (config.voices.enabled if enabled is None else enabled) or not prints:
        return []
    enrolled = store.voices.all()
    comparable = voices.usable(enrolled, WEIGHTS_ID)
    if len(comparable) < len(enrolled):
        log.warning(
            "%d enrolled voice(s) were made with other diarization weights and name nobody; "
            "enroll them again (transcribd voices list)",
            len(enrolled) - len(comparable),
        )
    return voices.match(prints, comparable, config.voices.max_distance)


def matches_record(matches: list[voices.Match]) -> dict[str, dict[str, Any]]:
    """The matches as a job's metrics keep them: by label, the name and distance."""
    return {m.speaker: {"name": m.name, "distance": m.distance} for m in matches}


def matches_of(metrics: dict[str, Any]) -> list[voices.Match]:
    """The matches a job's metrics keep (see :func:`matches_record`)."""
    kept = metrics.get("voices") or {}
    return [voices.Match(k, str(v["name"]), float(v["distance"])) for k, v in kept.items()]


def cue_rules(config: Config) -> CueRules:
    """How subtitle cues are laid out, from ``[output]``."""
    o = config.output
    return CueRules(o.max_line_chars, o.max_lines, o.max_cue_seconds)


def settle(
    config: Config, store: Store, job: JobRecord, lease: Lease, now: datetime, exc: BaseException
) -> bool:
    """A running job's attempt ended in ``exc``: decide (:func:`daemon.retry.decide`) and apply
    it: back to the queue (with its new options) not before ``run_after``, or failed with the
    message; the attempt's spool goes either way.  True when it will run again."""
    spool_mod.drop(spool_path(config, job.sha256, spool_mod.job_key(job.id, lease.attempt)))
    d = config.daemon
    decision = retry.decide(
        exc,
        lease.attempt,
        d.max_attempts,
        now,
        job.profile,
        backoff=d.backoff_seconds,
        resource_backoff=d.resource_backoff_seconds,
        device=job.device,
    )
    extra = {"job": job.id, "error": decision.message}
    if decision.retry and decision.run_after is not None:
        options = decision.options_for_retry(job.options)
        if store.retry(lease, now, decision.message, decision.run_after, options):
            log.warning("job %s will retry: %s", job.id, decision.message, extra=extra)
            return True
    elif store.fail(lease, now, decision.message):
        log.error("job %s failed: %s", job.id, decision.message, extra=extra)
        return False
    log.warning("job %s ended (%s) after it was superseded", job.id, decision.message, extra=extra)
    return False


@dataclass
class Executor:
    """Processes one claimed job from start to its final state; a job's own errors never
    escape it."""

    config: Config
    store: Store
    models: WarmModels
    owner: str
    threads: int = 0
    """This worker's share of the cores (0: every usable core)."""
    clock: Callable[[], datetime] | None = None
    """The time of the job's changes (default: the store's, see :meth:`Store.now`)."""
    should_stop: Callable[[], bool] = never
    """True asks the running job to stop at its next checkpoint (graceful shutdown)."""

    def __post_init__(self) -> None:
        self.now: Callable[[], datetime] = self.clock or self.store.now
        self.failure = ""
        """The reason class of the last attempt's error ("" when it had none)."""

    def execute(
        self, job: JobRecord, workers: int = 1, place: tuple[Path, str] | None = None
    ) -> bool:
        """Run a claimed job to its final state; True when it ended done.  ``workers``: how
        many workers the plan runs (recorded with the job's metrics); ``place``: where its
        transcripts go (default: from this executor's config)."""
        started, cpu_started = time.perf_counter(), time.process_time()
        self.failure = ""
        lease = Lease(job.id, self.owner, job.attempts)
        key = spool_mod.job_key(job.id, job.attempts)
        lost = threading.Event()
        log.info("job %s started", job.id, extra={"job": job.id, "path": job.path})
        try:
            with lease_keeper(self.store, lease, self.config.daemon.lease_seconds, lost):
                result = self._run(job, lease, key, lost.is_set)
                if not self.store.owns(lease):  # fenced: publish nothing
                    raise Cancelled("the job is no longer this worker's")
                matches = voice_matches(self.config, self.store, Path(job.path), result.voiceprints)
                names = voices.names(matches, job.options.names)
                with result.stats.timed("outputs"):
                    outputs = write_job_outputs(
                        self.config, self.store, job, result.transcript, names, place
                    )
        except Cancelled:
            if self._released(lease):
                return False  # the same attempt resumes, with its spool
            done = False
        except InputRemoved as exc:
            self.store.cancel(lease, self.now(), str(exc))
            log.warning("job %s cancelled: %s", job.id, exc, extra={"job": job.id})
            done = False
        except Exception as exc:  # a bad job must never stop the daemon
            self.failure = "database" if db.unreachable(exc) else retry.failure_class(exc)
            if db.unreachable(exc):  # not the job's fault: its lease lapses, it resumes
                log.warning(
                    "job %s stopped: the database is unreachable (%s); it resumes once the "
                    "database is back",
                    job.id,
                    exc,
                    extra={"job": job.id},
                )
            else:
                settle(self.config, self.store, job, lease, self.now(), exc)
            done = False
        else:
            metrics = self._metrics(result, started, cpu_started, workers)
            if matches:
                metrics["voices"] = matches_record(matches)
            done = self._finish(lease, job, outputs, metrics)
            if done:
                log.info("job %s done", job.id, extra={"job": job.id, **metrics})
            else:  # superseded between the last check and now: take back what it wrote
                for path in set(outputs) - self.store.outputs_in_use():
                    Path(path).unlink(missing_ok=True)
                log.warning("job %s was superseded as it finished", job.id, extra={"job": job.id})
        spool_mod.drop(spool_path(self.config, job.sha256, key))  # this attempt has ended
        return done

    def _finish(
        self, lease: Lease, job: JobRecord, outputs: list[str], metrics: dict[str, Any]
    ) -> bool:
        """Record the job done with its outputs.  While the database is out of reach, try
        again for as long as the lease lasts; then take back the files that no job records
        (a later attempt writes them again) and give up."""
        deadline = time.monotonic() + self.config.daemon.lease_seconds
        while True:
            try:
                return self.store.finish(lease, self.now(), outputs, metrics)
            except Exception as exc:
                if not db.unreachable(exc) or time.monotonic() > deadline:
                    for path in set(outputs) - set(job.outputs):
                        Path(path).unlink(missing_ok=True)
                    raise
                log.warning(
                    "job %s: the database is unreachable as the job ends; trying again",
                    job.id,
                    extra={"job": job.id},
                )
                time.sleep(2.0)

    def _released(self, lease: Lease) -> bool:
        """The job stopped at a checkpoint (asked to, or its lease was lost): release it;
        True when it was still this worker's to release."""
        if self.store.release(lease, self.now()):
            log.info(
                "job %s stopped at a checkpoint; it resumes from its finished steps",
                lease.job_id,
                extra={"job": lease.job_id},
            )
            return True
        log.warning(
            "job %s is no longer this worker's (superseded, or recovered after a stall); "
            "nothing was published",
            lease.job_id,
            extra={"job": lease.job_id},
        )
        return False

    def _run(
        self, job: JobRecord, lease: Lease, spool_key: str, lost: Callable[[], bool]
    ) -> PipelineResult:
        seconds = self.config.daemon.lease_seconds
        last_beat = [0.0]

        def on_progress(p: float) -> None:
            t = time.perf_counter()
            if t - last_beat[0] >= 1.0 or p >= 1.0:
                last_beat[0] = t
                with db.outage_ignored():  # a progress report; the lease keeper judges outages
                    self.store.heartbeat(lease, self.now(), seconds, progress=p)

        return run_pipeline(
            self.config,
            self.models,
            self.store,
            Path(job.path),
            job.sha256,
            job.options,
            previous_profile=job.profile,
            threads=self.threads,
            spool_key=spool_key,
            on_progress=on_progress,
            clock=self.now,
            should_stop=lambda: self.should_stop() or lost(),
        )

    def _metrics(
        self, result: PipelineResult, started: float, cpu_started: float, workers: int
    ) -> dict[str, Any]:
        return {
            **run_metrics(result, started, cpu_started, self.models.device.name),
            "model_loads": self.models.loads,
            "workers": workers,
            "threads": self.threads or usable_cores(),
            "peak_rss": peak_rss(),
            "pid": os.getpid(),
        }


def run_metrics(
    result: PipelineResult, started: float, cpu_started: float, device: str = "cpu"
) -> dict[str, Any]:
    """A pipeline run's figures (a job's metrics, ``transcribe --metrics``): wall and CPU
    seconds since ``started`` / ``cpu_started``, audio seconds, real-time factor, the steps,
    and the device the models ran on."""
    wall = time.perf_counter() - started
    return {
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(time.process_time() - cpu_started, 3),
        "audio_seconds": round(result.audio_seconds, 3),
        "rtf": round(wall / result.audio_seconds, 4) if result.audio_seconds else None,
        "steps": result.stats.as_dict(),
        "profile": result.transcript.profile,
        "device": device,
    }
