"""Pure: a Whisper window's words -> subtitle-sized segments.

Whisper decoded without timestamp tokens (see :meth:`daemon.pipeline.asr.AsrModel.transcribe`)
gives one segment per 30-s window; its word timestamps then place the cuts: after a sentence
end (not after an abbreviation: :mod:`daemon.pipeline.sentences`), at a pause, and before a
segment grows past ``max_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.sentences import ends_sentence

RULES_VERSION = 2
"""Part of the ASR step's cache key (its cached segments are cut by these rules): bumped when
the cuts change.  2: full stops after abbreviations, initials and numbers are not sentence
ends."""


@dataclass(frozen=True)
class SplitRules:
    max_seconds: float = 12.0
    """A segment is cut before the word that would make it longer."""
    pause_seconds: float = 0.8
    """A silence this long between two words ends a segment."""
    min_seconds: float = 1.0
    """A sentence end closes a segment only once it is this long (no "Yes." alone)."""


def split(segment: Segment, rules: SplitRules = SplitRules()) -> list[Segment]:
    """``segment`` cut at sentence ends, pauses and ``max_seconds``; without word timestamps
    it is returned whole."""
    if len(segment.words) < 2:
        return [segment]
    out: list[Segment] = []
    current: list[Word] = []
    words = segment.words
    for i, word in enumerate(words):
        if current and (
            word.start - current[-1].end >= rules.pause_seconds
            or word.end - current[0].start > rules.max_seconds
        ):
            out.append(_of(current, segment.speaker))
            current = []
        current.append(word)
        following = words[i + 1].word if i + 1 < len(words) else None
        ends = ends_sentence(word.word, following)
        if ends and current[-1].end - current[0].start >= rules.min_seconds:
            out.append(_of(current, segment.speaker))
            current = []
    if current:
        out.append(_of(current, segment.speaker))
    return out


def _of(words: list[Word], speaker: str | None) -> Segment:
    return Segment(
        start=words[0].start,
        end=max(words[-1].end, words[0].start),
        text="".join(w.word for w in words).strip(),
        words=tuple(words),
        speaker=speaker,
    )
