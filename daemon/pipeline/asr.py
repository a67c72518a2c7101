"""Thin faster-whisper adapter: loads a resolved model once, returns plain dataclasses."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from daemon.modelstore import ResolvedModel
from daemon.pipeline.audio import SAMPLE_RATE, Audio

log = logging.getLogger(__name__)

WINDOW_SECONDS = 30
"""Whisper's input window."""
SHORT_PROBE_SECONDS = 10.0
"""Least audio a short clip's language is detected on (silence pads it to this length)."""
FEATURE_HOP = 160
"""Samples per mel frame."""


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    speaker: str | None = None


@dataclass(frozen=True)
class AsrOptions:
    beam_size: int = 1
    compute_type: str = "int8"
    initial_prompt: str = ""
    """Text Whisper takes as what came before each window: its vocabulary and its style
    (faster-whisper's ``initial_prompt``)."""
    hotwords: str = ""
    """Words and spellings to prefer (faster-whisper's ``hotwords``)."""
    task: str = ""
    """Whisper's task: "" (transcribe) or "translate" (into English)."""

    def key(self) -> dict[str, Any]:
        """The options as the ASR step's cache key holds them (unset vocabulary and the
        transcribe task left out, so results cached before they existed stay valid)."""
        return {k: v for k, v in asdict(self).items() if v != ""}


class AsrModel:
    """One loaded Whisper model.

    ``lanes`` CTranslate2 workers (replicas sharing the weights), ``cpu_threads`` each, let
    that many chunks be transcribed at once from as many threads.
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        compute_type: str,
        cpu_threads: int,
        lanes: int = 1,
        device: str = "cpu",
        device_index: int = 0,
    ) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.resolved = resolved
        self.compute_type = compute_type
        self.lanes = max(1, lanes)
        # A folder, never a size name: faster-whisper would otherwise go to the hub.
        self._model = WhisperModel(
            str(resolved.path),
            device=device,
            device_index=device_index,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=self.lanes,
            local_files_only=True,
        )
        self._batched = BatchedInferencePipeline(self._model)

    def detect_language(self, audio: Audio) -> tuple[str, float]:
        """The language of ``audio`` and its probability: faster-whisper's detection over up
        to three 30-s windows; a clip shorter than one window is encoded at its own length
        (at least :data:`SHORT_PROBE_SECONDS`) instead of padded to 30 s: as accurate on the
        clips of bench/language.py, for 0.17 s instead of 1 s on an 8-s clip (one thread)."""
        if not self.resolved.multilingual:
            return "en", 1.0
        if audio.size < WINDOW_SECONDS * SAMPLE_RATE:
            return self._detect_short(audio)
        language, probability, _ = self._model.detect_language(
            audio=audio, language_detection_segments=3
        )
        return str(language), float(probability)

    def _detect_short(self, audio: Audio) -> tuple[str, float]:
        least = int(SHORT_PROBE_SECONDS * SAMPLE_RATE)
        clip = np.pad(audio, (0, max(0, least - audio.size)))
        features = self._model.feature_extractor(clip)[:, : clip.size // FEATURE_HOP]
        encoded = self._model.encode(features)
        token, probability = self._model.model.detect_language(encoded)[0][0]
        return str(token)[2:-2], float(probability)

    def transcribe(
        self, audio: Audio, language: str | None, options: AsrOptions
    ) -> tuple[list[Segment], str]:
        """Segments with word timestamps, relative to the start of ``audio``, and the language
        (detected from the first 30 s within the same pass when ``language`` is None).

        faster-whisper's batched pipeline: ``audio`` is cut into equal windows of at most 30 s,
        decoded together without timestamp tokens or temperature fallback; one segment per
        window, its words timed (``daemon.pipeline.segments`` cuts it into sentences).  Faster
        than its sequential ``transcribe`` at no cost in WER (bench/lanes.py, bench/RESULTS.md).
        """
        if not self.resolved.multilingual:
            language = "en"
        if audio.size < SAMPLE_RATE // 10:
            return [], language or "en"
        windows = -(-audio.size // (WINDOW_SECONDS * SAMPLE_RATE))
        size = audio.size / windows / SAMPLE_RATE
        clips = [{"start": i * size, "end": (i + 1) * size} for i in range(windows)]
        segments, info = self._batched.transcribe(
            audio,
            **_decoding(language, options),
            clip_timestamps=clips,
            batch_size=windows,
        )
        return [_segment(s) for s in segments], str(info.language)

    def transcribe_again(
        self, audio: Audio, language: str | None, options: AsrOptions
    ) -> tuple[list[Segment], str]:
        """As :meth:`transcribe`, through faster-whisper's sequential ``transcribe`` and its
        temperature fallback: a 30-s window whose text compresses above its
        ``compression_ratio_threshold`` (2.4) is decoded again at a higher temperature, and
        no window is conditioned on the one before (a loop does not carry over).  For a chunk
        whose batched pass was degenerate (:mod:`daemon.pipeline.degenerate`)."""
        if not self.resolved.multilingual:
            language = "en"
        segments, info = self._model.transcribe(
            audio, **_decoding(language, options), condition_on_previous_text=False
        )
        return [_segment(s) for s in segments], str(info.language)


def _decoding(language: str | None, options: AsrOptions) -> dict[str, Any]:
    """What both of faster-whisper's passes are told: the language, the options, word
    timings, and no VAD of their own (the chunks are speech already)."""
    return {
        "language": language,
        "beam_size": options.beam_size,
        "word_timestamps": True,
        "vad_filter": False,
        "initial_prompt": options.initial_prompt or None,
        "hotwords": options.hotwords or None,
        "task": options.task or "transcribe",
    }


def _segment(s: Any) -> Segment:
    words = tuple(
        Word(
            start=float(w.start),
            end=float(w.end),
            word=str(w.word),
            probability=float(w.probability),
        )
        for w in (s.words or [])
    )
    return Segment(start=float(s.start), end=float(s.end), text=str(s.text).strip(), words=words)
