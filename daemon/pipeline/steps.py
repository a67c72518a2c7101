"""The pipeline's steps, each a function of its inputs and the step cache.

probe -> decode (+ VAD) -> language -> ASR per chunk -> diarize -> merge.  Each computed result is
stored under the step's name and parameters (see :mod:`daemon.pipeline.cache`); the cache keys
built here are the contract with every database a daemon has filled, so they change only with
:data:`daemon.pipeline.cache.PIPELINE_VERSION`.  :mod:`daemon.pipeline.run` orders the steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daemon import fsnames
from daemon.config import SpeakerHints
from daemon.errors import DecodeError, InputRemoved
from daemon.pipeline import asr, audio
from daemon.pipeline.asr import AsrModel, AsrOptions, Segment, Word
from daemon.pipeline.cache import StepCache
from daemon.pipeline.degenerate import transcribe_checked, unsound_asr
from daemon.pipeline.diarize import WEIGHTS_ID, DiarizeParams, window_progress
from daemon.pipeline.frames import FRAME_BLOCK_CHUNKS
from daemon.pipeline.merge import Turn, WindowDiarization, attribute, link_windows, speakers_of
from daemon.pipeline.outputs import Transcript
from daemon.pipeline.segments import RULES_VERSION as CUT_RULES
from daemon.pipeline.segments import split as split_segment
from daemon.pipeline.spool import Spool
from daemon.pipeline.vad import Chunk, Region, SpeechDetector, VadParams, plan_windows
from daemon.pipeline.vad import to_original_time as map_time

LANGUAGE_PROBE_SECONDS = 90.0

ModelLoader = Callable[[], AsrModel]
"""Loads (or returns the warm) model of the job; only called when a step must be computed."""
Diarize = Callable[..., WindowDiarization]
"""A loaded diarizer: (audio, offset=, num_speakers=, min_speakers=, max_speakers=) -> window."""
DiarizerLoader = Callable[[], Diarize]
Lane = Callable[[], AbstractContextManager[None]]
"""Held while a chunk is transcribed (limits how many run at once)."""


@dataclass(frozen=True)
class Speech:
    samples: int
    """Samples of the whole decoded file (16 kHz)."""
    regions: list[Region]
    """Where the VAD found speech, in seconds."""

    @property
    def duration(self) -> float:
        return self.samples / audio.SAMPLE_RATE


@dataclass(frozen=True)
class AsrChoice:
    name: str
    """The model's name as the profile gives it."""
    identity: str
    """Its weights and compute type (part of the ASR steps' cache keys)."""
    load: ModelLoader


def check_input(path: Path) -> None:
    """:class:`InputRemoved` when the file is gone (deleted or moved away)."""
    if not path.exists() and not path.is_symlink():
        raise InputRemoved(f"input removed: {fsnames.printable(path)} no longer exists")


def probe(cache: StepCache, path: Path) -> dict[str, Any]:
    """Container facts: duration, and the length the header declares (for truncation)."""
    return dict(cache.run("probe", {}, lambda: asdict(audio.probe(path))))


def decode(
    cache: StepCache,
    spool: Spool,
    vad: VadParams,
    info: dict[str, Any],
    on_progress: Callable[[float], None],
) -> Speech:
    """Decode into the spool while the VAD listens; a stop request is honoured between blocks."""
    total_hint = max(float(info["duration"]), 1.0)

    def compute() -> dict[str, Any]:
        detector = SpeechDetector(vad)

        def on_block(block: audio.Audio, offset: int) -> None:
            cache.checkpoint()
            check_input(spool.source)
            detector.feed(block, offset)
            on_progress(min(1.0, (offset + block.size) / audio.SAMPLE_RATE / total_hint))

        samples = spool.decode(on_block)
        if samples == 0:
            raise DecodeError("no audio samples could be decoded")
        audio.check_complete(samples / audio.SAMPLE_RATE, info.get("declared"))
        return {"samples": samples, "regions": [[r.start, r.end] for r in detector.regions]}

    payload = cache.run("vad", {"vad": asdict(vad)}, compute)
    spool.samples = int(payload["samples"])
    regions = [Region(float(s), float(e)) for s, e in payload["regions"]]
    return Speech(samples=spool.samples, regions=regions)


def initial_language(setting: str, multilingual: bool) -> str:
    """The language known before any audio is heard: a forced code, English for an
    English-only model, else "" (to be detected)."""
    if setting != "auto":
        return setting
    return "" if multilingual else "en"


def needs_detection(language: str, chunks: list[Chunk]) -> bool:
    """Detect the language as a step of its own?  Whenever it is not known and there is
    speech: even for a one-chunk file, whose ASR pass could detect it, because the step's
    detection of a short clip costs a sixth of the pass's (bench/RESULTS.md, "Language of
    short clips")."""
    return not language and bool(chunks)


def detect_language(
    cache: StepCache, spool: Spool, chunks: list[Chunk], model: AsrChoice
) -> tuple[str, float]:
    """The language of the file's first :data:`LANGUAGE_PROBE_SECONDS` of speech, and its
    probability."""
    probe_chunks = _leading(chunks, LANGUAGE_PROBE_SECONDS)

    def compute() -> dict[str, Any]:
        clip = np.concatenate([spool.chunk(c) for c in probe_chunks])
        lang, prob = model.load().detect_language(
            clip[: int(LANGUAGE_PROBE_SECONDS * audio.SAMPLE_RATE)]
        )
        return {"language": lang, "probability": prob}

    params = {
        "model": model.identity,
        "probe": LANGUAGE_PROBE_SECONDS,
        "short_probe": asr.SHORT_PROBE_SECONDS,
    }
    found = cache.run("language", params, compute)
    return str(found["language"]), float(found.get("probability", 0.0))


def transcribe(
    cache: StepCache,
    spool: Spool,
    chunks: list[Chunk],
    model: AsrChoice,
    language: str,
    options: AsrOptions,
    lanes: int,
    lane: Lane,
    on_progress: Callable[[float], None],
) -> tuple[list[Segment], str]:
    """ASR of every chunk (each a cached step), ``lanes`` at a time: segments on the file's
    timeline, and the language ("" asks the first chunk's pass to detect it)."""
    total_speech = sum(c.speech for c in chunks) or 1.0
    done = [0.0]
    lock = threading.Lock()

    def run(chunk: Chunk, language: str) -> dict[str, Any]:
        params = {
            "model": model.identity,
            "language": language,
            "options": options.key(),
            "regions": [[r.start, r.end] for r in chunk.regions],
            "cuts": CUT_RULES,
        }

        def compute() -> dict[str, Any]:
            with lane():
                clip = spool.chunk(chunk)
                span = (chunk.regions[0].start, chunk.regions[-1].end)
                found, lang = transcribe_checked(
                    model.load(), model.name, clip, span, language or None, options
                )
            parts = [_map_segment(part, chunk.regions) for s in found for part in split_segment(s)]
            return {"language": lang, "segments": [_segment_dict(p) for p in parts]}

        payload: dict[str, Any] = cache.run("asr", params, compute, unsound=unsound_asr)
        with lock:
            done[0] += chunk.speech
            on_progress(done[0] / total_speech)
        return payload

    payloads: list[dict[str, Any]] = []
    rest = chunks
    if chunks and not language:  # the first chunk's pass detects the language
        payloads.append(run(chunks[0], language))
        language = str(payloads[0]["language"])
        rest = chunks[1:]
    payloads.extend(_in_lanes(rest, lanes, lambda c: run(c, language)))
    segments = [_segment_from_dict(d) for p in payloads for d in p["segments"]]
    return segments, language or "en"


def diarize(
    cache: StepCache,
    spool: Spool,
    speech: Speech,
    params: DiarizeParams,
    hints: SpeakerHints,
    window_seconds: float,
    load: DiarizerLoader,
    on_progress: Callable[[float], None],
    device: str = "cpu",
) -> WindowDiarization:
    """Speaker turns of the whole file (not only the VAD's speech: pyannote finds quiet speech
    Silero misses), diarized in windows of about ``window_seconds`` of speech linked by voice,
    and each speaker's voice print (centroid embedding).  Each window of a long file is cached
    on its own, so a stopped job resumes at the next."""
    windows = plan_windows(speech.duration, speech.regions, window_seconds)
    key = {
        "diarization": asdict(params),
        "hints": asdict(hints),
        "windows": windows,
        "weights": WEIGHTS_ID,
        "device": device,
    }

    def compute() -> dict[str, Any]:
        results = []
        for index in range(len(windows)):
            window = _diarize_window(cache, spool, windows, index, key, hints, load, on_progress)
            results.append(window)
            on_progress((index + 1) / len(windows))
        linked = link_windows(
            results, params.threshold, max_speakers=hints.num_speakers or hints.max_speakers
        )
        return {
            "turns": [[t.start, t.end, t.speaker] for t in linked.turns],
            "centroids": {k: list(v) for k, v in linked.centroids.items()},
        }

    # "prints": the result carries the speakers' voice prints (it was the turns alone)
    full = {**key, "prints": True}
    if cache.cache_only and cache.lookup("diarize", full) is None:
        for older_key, with_prints in _older_keys(key):
            older = cache.lookup("diarize", older_key)
            if older is not None:  # a job finished by an earlier version: what it kept
                on_progress(1.0)
                return _window_from_dict(
                    older if with_prints else {"turns": older, "centroids": {}}
                )
    payload = cache.run("diarize", full, compute)
    on_progress(1.0)
    return _window_from_dict(payload)


def _older_keys(key: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """The diarize step's keys as earlier versions wrote them, newest first, each with whether
    its payload holds voice prints: a cache-only run (renaming or relabelling a finished job's
    speakers) takes what the job was made with, and never recomputes.  Before the key always
    held the device, a CPU run's held none (every earlier key of a CPU run is without it);
    before lone voices were searched for there was no ``lone_voice_share``; before clusters of
    one voice were merged there was no ``merge_distance`` (those jobs were made without
    merging, whatever it is now); before CAM++'s front end was shared there was no
    ``frame_block_chunks`` (its default 2 was the only behaviour); before voice prints the
    payload was the turns alone."""
    keys = []
    if key["device"] == "cpu":
        key = {k: v for k, v in key.items() if k != "device"}
        keys.append(({**key, "prints": True}, True))
    diarization = dict(key["diarization"])
    for later in ("lone_voice_share", "merge_distance"):  # the newest field first
        diarization.pop(later, None)
        keys.append(({**key, "diarization": dict(diarization), "prints": True}, True))
    if diarization.pop("frame_block_chunks", FRAME_BLOCK_CHUNKS) != FRAME_BLOCK_CHUNKS:
        return keys
    before = {**key, "diarization": diarization}
    return [*keys, ({**before, "prints": True}, True), (before, False)]


def _diarize_window(
    cache: StepCache,
    spool: Spool,
    windows: list[tuple[float, float]],
    index: int,
    key: dict[str, Any],
    hints: SpeakerHints,
    load: DiarizerLoader,
    on_progress: Callable[[float], None] = lambda _f: None,
) -> WindowDiarization:
    """One window: the hints bind a single window; across windows only the maximum does.
    ``on_progress`` gets the file's share done as the window's batches are (a stop request is
    honoured between them)."""
    start, end = windows[index]
    single = len(windows) == 1
    most = hints.max_speakers if single else (hints.num_speakers or hints.max_speakers)
    done = [0.0]

    def hook(
        name: str, *_: Any, completed: int | None = None, total: int | None = None, **__: Any
    ) -> None:
        cache.checkpoint()
        fraction = window_progress(name, completed, total)
        if fraction is not None and fraction > done[0]:
            done[0] = fraction
            on_progress((index + fraction) / len(windows))

    def compute() -> dict[str, Any]:
        diarizer = load()
        found = diarizer(
            spool.read(round(start * audio.SAMPLE_RATE), round(end * audio.SAMPLE_RATE)),
            offset=start,
            num_speakers=hints.num_speakers if single else None,
            min_speakers=hints.min_speakers if single else None,
            max_speakers=most,
            hook=hook,
        )
        for part, (wall, cpu) in found.timing.items():
            cache.stats.record(f"diarize.{part}", wall, cpu)
        return {
            "turns": [[t.start, t.end, t.speaker] for t in found.turns],
            "centroids": {k: list(v) for k, v in found.centroids.items()},
        }

    # one window: the file's result is cached as a whole by the caller
    payload = (
        compute() if single else cache.run("diarize_window", {**key, "window": index}, compute)
    )
    return _window_from_dict(payload)


def _window_from_dict(payload: dict[str, Any]) -> WindowDiarization:
    return WindowDiarization(
        turns=tuple(Turn(float(a), float(b), str(w)) for a, b, w in payload["turns"]),
        centroids={k: tuple(map(float, v)) for k, v in payload["centroids"].items()},
    )


def merge(
    path: Path,
    sha256: str,
    speech: Speech,
    language: str,
    profile: str,
    model: str,
    segments: list[Segment],
    turns: list[Turn],
) -> Transcript:
    """Words x speaker turns -> the transcript (speaker-attributed when there are turns)."""
    if turns:
        segments = attribute(segments, turns)
    return Transcript(
        source=fsnames.printable(path),
        sha256=sha256,
        duration=round(speech.duration, 3),
        language=language,
        profile=profile,
        model=model,
        segments=tuple(segments),
        speakers=tuple(speakers_of(turns)),
        turns=tuple(turns),
    )


def _in_lanes(
    chunks: list[Chunk], lanes: int, run: Callable[[Chunk], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``run`` over the chunks, ``lanes`` at a time, results in chunk order.  On an error (a
    stop request included) no further chunk starts; those running finish (and are cached)."""
    with ThreadPoolExecutor(max_workers=max(1, lanes), thread_name_prefix="asr") as pool:
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
