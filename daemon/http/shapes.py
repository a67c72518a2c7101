"""A finished job's transcript in the shapes the HTTP APIs answer with (pure).

OpenAI's audio API (``json``, ``text``, ``srt``, ``vtt``, ``verbose_json``, ``diarized_json``)
and whisper-asr-webservice's ``/asr`` (``txt``, ``vtt``, ``srt``, ``tsv``, ``json``), from the
transcript a job stored and its speakers' names.  Fields transcribd does not compute are given
their honest neutral value and said so: a segment's ``tokens`` are empty, its
``no_speech_prob`` is 0 (only speech reaches the ASR: the VAD cut the rest), its
``avg_logprob`` is the mean log probability of its words, its ``compression_ratio`` is the
zlib ratio of its text, as Whisper measures it.
"""

from __future__ import annotations

import math
import string
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon import languages
from daemon.pipeline.asr import Segment
from daemon.pipeline.cues import DEFAULT_CUES, CueRules
from daemon.pipeline.outputs import Transcript, rename_speakers, render_srt, render_vtt

OPENAI_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
ASR_OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")


@dataclass(frozen=True)
class Answer:
    """A response body: JSON (a mapping) or text, with its media type."""

    body: str | dict[str, Any]
    media_type: str


def text_of(t: Transcript) -> str:
    """The transcript's words as one text (segments joined by a space)."""
    return " ".join(s.text.strip() for s in t.segments if s.text.strip())


def compression_ratio(text: str) -> float:
    """Whisper's measure of repetition: bytes of the text over bytes of it compressed."""
    raw = text.encode("utf-8")
    return round(len(raw) / len(zlib.compress(raw)), 4) if raw else 0.0


def avg_logprob(s: Segment) -> float:
    """Mean log probability of the segment's words (0 for a segment without words)."""
    probs = [max(w.probability, 1e-9) for w in s.words]
    return round(sum(math.log(p) for p in probs) / len(probs), 4) if probs else 0.0


def _whisper_segment(i: int, s: Segment, words: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": i,
        "seek": round(s.start * 100),
        "start": round(s.start, 3),
        "end": round(s.end, 3),
        "text": s.text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": avg_logprob(s),
        "compression_ratio": compression_ratio(s.text),
        "no_speech_prob": 0.0,
    }
    if words:
        out["words"] = [_word(w) | {"probability": round(w.probability, 4)} for w in s.words]
    return out


def _word(w: Any) -> dict[str, Any]:
    return {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}


def letters(speakers: tuple[str, ...], names: Mapping[str, str]) -> dict[str, str]:
    """Each diarized speaker's label in ``diarized_json``: its name where it has one (an
    enrolled voice, a known speaker of the request, a rename), else A, B, ... in order of
    first appearance (AA, AB, ... past Z)."""
    out: dict[str, str] = {}
    unnamed = 0
    for label in speakers:
        if label in names:
            out[label] = names[label]
            continue
        n, tag = unnamed, ""
        while True:
            tag = string.ascii_uppercase[n % 26] + tag
            n = n // 26 - 1
            if n < 0:
                break
        out[label] = tag
        unnamed += 1
    return out


def openai(
    t: Transcript,
    names: Mapping[str, str],
    fmt: str,
    task: str = "transcribe",
    words: bool = False,
    segments: bool = True,
    cues: CueRules = DEFAULT_CUES,
) -> Answer:
    """The OpenAI audio API's answer in ``fmt`` (one of :data:`OPENAI_FORMATS`).  ``words`` /
    ``segments``: the ``timestamp_granularities[]`` asked for (``verbose_json``)."""
    named = rename_speakers(t, dict(names))
    usage = {"type": "duration", "seconds": math.ceil(t.duration)}
    if fmt == "text":
        return Answer(text_of(t) + "\n", "text/plain; charset=utf-8")
    if fmt == "srt":
        return Answer(render_srt(named, cues), "text/plain; charset=utf-8")
    if fmt == "vtt":
        return Answer(render_vtt(named, cues), "text/vtt; charset=utf-8")
    if fmt == "verbose_json":
        body: dict[str, Any] = {
            "task": task,
            "language": languages.name(t.language) if task == "transcribe" else "english",
            "duration": round(t.duration, 3),
            "text": text_of(t),
        }
        if segments or not words:
            body["segments"] = [_whisper_segment(i, s, False) for i, s in enumerate(t.segments)]
        if words:
            body["words"] = [_word(w) for s in t.segments for w in s.words]
        body["usage"] = usage
        return Answer(body, "application/json")
    if fmt == "diarized_json":
        tags = letters(t.speakers, names)
        return Answer(
            {
                "task": "transcribe",
                "duration": round(t.duration, 3),
                "text": text_of(t),
                "segments": [
                    {
                        "type": "transcript.text.segment",
                        "id": f"seg_{i:03d}",
                        "start": round(s.start, 3),
                        "end": round(s.end, 3),
                        "speaker": tags.get(s.speaker or "", "A"),
                        "text": s.text,
                    }
                    for i, s in enumerate(t.segments)
                ],
                "usage": usage,
            },
            "application/json",
        )
    return Answer({"text": text_of(t), "usage": usage}, "application/json")


def asr(t: Transcript, names: Mapping[str, str], output: str, words: bool = False) -> Answer:
    """whisper-asr-webservice's ``/asr`` answer in ``output`` (one of :data:`ASR_OUTPUTS`):
    the files Whisper's writers make, speakers named in srt and vtt as transcribd's own."""
    named = rename_speakers(t, dict(names))
    if output == "srt":
        return Answer(render_srt(named), "text/plain; charset=utf-8")
    if output == "vtt":
        return Answer(render_vtt(named), "text/plain; charset=utf-8")
    if output == "tsv":
        rows = ["start\tend\ttext"]
        rows += [
            f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text.strip().replace(chr(9), ' ')}"
            for s in t.segments
        ]
        return Answer("\n".join(rows) + "\n", "text/plain; charset=utf-8")
    if output == "json":
        segments = []
        for i, s in enumerate(named.segments):
            seg = _whisper_segment(i, s, words)
            if s.speaker:
                seg["speaker"] = s.speaker
            segments.append(seg)
        body = {"text": text_of(t), "segments": segments, "language": t.language}
        return Answer(body, "application/json")
    lines = [s.text.strip() for s in t.segments if s.text.strip()]
    return Answer("".join(f"{line}\n" for line in lines), "text/plain; charset=utf-8")
