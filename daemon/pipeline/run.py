"""The step runner: orders the steps of :mod:`daemon.pipeline.steps` for one file.

probe -> decode+VAD -> chunk plan -> language -> ASR per chunk (beside diarization, when the
worker's threads are split between them; it starts before the language) -> merge.  Each step
checkpoints and is cached; the runner only orders them, shares the threads and reports
progress.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config import SpeakerHints, Vocabulary
from daemon.modelstore import ResolvedModel
from daemon.pipeline import steps
from daemon.pipeline.asr import AsrOptions, Segment
from daemon.pipeline.cache import StepCache, StepStats
from daemon.pipeline.merge import WindowDiarization
from daemon.pipeline.outputs import Transcript
from daemon.pipeline.spool import Spool
from daemon.pipeline.steps import AsrChoice, DiarizerLoader, ModelLoader, Speech
from daemon.pipeline.vad import Chunk, plan_chunks
from daemon.profiles import Profile
from daemon.threads import ThreadSplit
from daemon.threads import split as split_threads

DECODE_SHARE = 0.1
DIARIZE_SHARE = 0.25
"""Shares of progress given to decoding + VAD and to diarization; ASR gets the rest."""


@dataclass(frozen=True)
class JobInput:
    path: Path
    sha256: str
    profile: Profile
    language: str
    """"auto" or a forced ISO code."""
    model: ResolvedModel
    hints: SpeakerHints = field(default_factory=SpeakerHints)
    diarize: bool = True
    window_seconds: float = 600.0
    english_model: ResolvedModel | None = None
    """The profile's English-only model, used when the language is English."""
    threads: ThreadSplit = field(default_factory=lambda: split_threads(1, False, False))
    """How the worker's threads are shared between ASR lanes and diarization."""
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    """The job's initial prompt and hotwords."""
    device: str = "cpu"
    """Where Whisper runs ("cpu" or "cuda"): part of the ASR step's key off the CPU (GPU
    kernels decode differently)."""
    diarize_device: str = "cpu"
    """Where the diarization networks run: part of the diarize steps' keys (that CUDA gives the
    CPU's results within rounding was never measured)."""
    task: str = "transcribe"
    """"transcribe", "translate" (Whisper's translation into English, cached apart), or
    "language" (only the language: no ASR, no diarization)."""


def no_diarizer() -> steps.Diarize:
    raise RuntimeError("diarization is needed but no diarizer was given")


@dataclass(frozen=True)
class Loaders:
    """The job's models, each loaded (or taken warm) only when a step must be computed."""

    asr: ModelLoader
    english: ModelLoader | None = None
    diarizer: DiarizerLoader = no_diarizer


@dataclass(frozen=True)
class PipelineResult:
    transcript: Transcript
    stats: StepStats
    audio_seconds: float
    voiceprints: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Each diarized speaker's centroid embedding, by its label in the transcript."""
    language_probability: float | None = None
    """How sure the language step was (None where it did not run: a forced language, or the
    first chunk's pass detected it)."""


def transcribe_file(
    job: JobInput,
    cache: StepCache,
    models: Loaders,
    spool: Spool,
    on_progress: Callable[[float], None] = lambda _p: None,
    on_asr_done: Callable[[], None] = lambda: None,
) -> PipelineResult:
    """Run the steps for one file; ``on_asr_done`` is told when ASR has finished (diarization,
    if still running, may take its threads)."""
    steps.check_input(job.path)
    info = steps.probe(cache, job.path)
    speech = steps.decode(
        cache, spool, job.profile.vad, info, lambda f: on_progress(DECODE_SHARE * f)
    )
    chunks = plan_chunks(speech.regions, job.profile.max_chunk_seconds)
    on_progress(DECODE_SHARE)
    sure: list[float] = []

    def choose_model() -> tuple[AsrChoice, str]:
        language = steps.initial_language(job.language, job.model.multilingual)
        main, english = _asr_choices(job, models)
        if steps.needs_detection(language, chunks):
            language, probability = steps.detect_language(cache, spool, chunks, main)
            sure.append(probability)
        if english is not None and language == "en" and job.task != "translate":
            return english, language
        return main, language

    if job.task == "language":
        return _language_only(job, cache, speech, choose_model, sure)

    segments, language, model_name, speakers = _transcribe_and_diarize(
        job, cache, models, spool, speech, chunks, choose_model, on_progress, on_asr_done
    )
    with cache.stats.timed("merge"):
        transcript = steps.merge(
            job.path,
            job.sha256,
            speech,
            language,
            job.profile.name,
            model_name,
            segments,
            list(speakers.turns),
        )
    return PipelineResult(
        transcript=transcript,
        stats=cache.stats,
        audio_seconds=speech.duration,
        voiceprints=speakers.centroids,
        language_probability=sure[0] if sure else None,
    )


def _language_only(
    job: JobInput,
    cache: StepCache,
    speech: Speech,
    choose_model: Callable[[], tuple[AsrChoice, str]],
    sure: list[float],
) -> PipelineResult:
    """A job that asks only which language is spoken: the language step (cached: the
    transcription that usually follows reuses it), nothing transcribed."""
    model, language = choose_model()
    forced = job.language != "auto" or not job.model.multilingual
    transcript = steps.merge(
        job.path, job.sha256, speech, language or "", job.profile.name, model.name, [], []
    )
    probability = sure[0] if sure else (1.0 if forced and language else 0.0)
    return PipelineResult(transcript, cache.stats, speech.duration, {}, probability)


def diarize_file(
    job: JobInput,
    cache: StepCache,
    models: Loaders,
    spool: Spool,
    on_progress: Callable[[float], None] = lambda _p: None,
) -> WindowDiarization:
    """Only the speakers of one file (turns and voice prints), through the same cached steps
    as :func:`transcribe_file`: what enrolling a voice needs."""
    steps.check_input(job.path)
    info = steps.probe(cache, job.path)
    speech = steps.decode(
        cache, spool, job.profile.vad, info, lambda f: on_progress(DECODE_SHARE * f)
    )

    def progress(f: float) -> None:
        on_progress(DECODE_SHARE + (1 - DECODE_SHARE) * f)

    return _diarize(job, cache, models, spool, speech, progress)


def _diarize(
    job: JobInput,
    cache: StepCache,
    models: Loaders,
    spool: Spool,
    speech: Speech,
    on_progress: Callable[[float], None],
) -> WindowDiarization:
    """The diarize step with the job's profile, hints and window length."""
    return steps.diarize(
        cache,
        spool,
        speech,
        job.profile.diarization,
        job.hints,
        job.window_seconds,
        models.diarizer,
        on_progress,
        job.diarize_device,
    )


def _asr_choices(job: JobInput, models: Loaders) -> tuple[AsrChoice, AsrChoice | None]:
    """The profile's model, and its English-only model where it has one (and a loader)."""
    compute_type = job.profile.compute_type
    if job.device != "cpu":
        compute_type = f"{compute_type}@{job.device}"
    main = AsrChoice(job.profile.model, f"{job.model.identity}:{compute_type}", models.asr)
    if job.english_model is None or models.english is None:
        return main, None
    english = AsrChoice(
        job.profile.english_model, f"{job.english_model.identity}:{compute_type}", models.english
    )
    return main, english


def _asr_options(job: JobInput) -> AsrOptions:
    """The ASR's options: the profile's beam and precision, the job's prompt and hotwords."""
    return AsrOptions(
        beam_size=job.profile.beam_size,
        compute_type=job.profile.compute_type,
        initial_prompt=job.vocabulary.initial_prompt,
        hotwords=job.vocabulary.hotwords,
        task="translate" if job.task == "translate" else "",
    )


def _transcribe_and_diarize(
    job: JobInput,
    cache: StepCache,
    models: Loaders,
    spool: Spool,
    speech: Speech,
    chunks: list[Chunk],
    choose_model: Callable[[], tuple[AsrChoice, str]],
    on_progress: Callable[[float], None],
    on_asr_done: Callable[[], None],
) -> tuple[list[Segment], str, str, WindowDiarization]:
    """ASR of the chunks (segments, language, the model's name) and diarization of the file:
    side by side when the threads are split (diarization needs only the spool and the speech
    regions, so it starts before ``choose_model`` detects the language and picks the model),
    else one after the other."""
    progress = _Progress(on_progress, job.diarize)
    split = job.threads

    abandon = threading.Event()
    # diarization beside the ASR stops at its next checkpoint if the ASR side fails (a
    # language detection that cannot load its model must not wait for the whole diarization)
    beside_cache = dataclasses.replace(
        cache, should_stop=lambda: cache.should_stop() or abandon.is_set()
    )

    def diarize(on: StepCache) -> WindowDiarization:
        return _diarize(job, on, models, spool, speech, lambda f: progress.set("diarize", f))

    beside = job.diarize and split.overlap
    gate = LaneGate(split.open_lanes if beside else split.lanes)
    options = _asr_options(job)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize") as pool:
        pending = pool.submit(diarize, beside_cache) if beside else None
        if pending is not None:
            pending.add_done_callback(lambda _f: gate.widen(split.lanes))
        try:
            model, language = choose_model()
            segments, language = steps.transcribe(
                cache,
                spool,
                chunks,
                model,
                language,
                options,
                split.lanes,
                gate.lane,
                lambda f: progress.set("asr", f),
            )
        except BaseException:
            abandon.set()
            raise
        on_asr_done()  # diarization, if still running, may take the ASR's threads
        if pending is not None:
            return segments, language, model.name, pending.result()
    speakers = diarize(cache) if job.diarize else WindowDiarization((), {})
    return segments, language, model.name, speakers


class LaneGate:
    """How many ASR chunks run at once: a few while diarization shares the cores, all the
    model's lanes once it has finished (the mirror of diarization taking the ASR's threads)."""

    def __init__(self, open_lanes: int) -> None:
        self._cond = threading.Condition()
        self._open = max(1, open_lanes)
        self._busy = 0

    def widen(self, lanes: int) -> None:
        with self._cond:
            self._open = max(self._open, lanes)
            self._cond.notify_all()

    @contextmanager
    def lane(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._busy < self._open)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()


class _Progress:
    """Combines ASR and diarization progress (which may advance from two threads)."""

    def __init__(self, report: Callable[[float], None], diarize: bool) -> None:
        self.report = report
        self.weights = {
            "asr": 1 - DECODE_SHARE - (DIARIZE_SHARE if diarize else 0.0),
            "diarize": DIARIZE_SHARE if diarize else 0.0,
        }
        self.done = {"asr": 0.0, "diarize": 0.0}
        self.lock = threading.Lock()

    def set(self, part: str, fraction: float) -> None:
        with self.lock:
            self.done[part] = fraction
            value = DECODE_SHARE + sum(self.weights[k] * self.done[k] for k in self.done)
        self.report(value)
