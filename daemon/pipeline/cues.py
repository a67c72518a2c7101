"""Pure: a transcript's timed words -> subtitle cues that follow broadcast conventions.

At most ``max_lines`` lines of ``max_line_chars`` characters per cue, at most ``max_seconds``
and at least ``min_seconds`` on screen, lines broken at natural points (after punctuation,
before a conjunction, never inside a word), a new cue at every segment, so at every change of
speaker.  Words keep their start times: a cue runs from its first word's start to its last word's
end, lengthened to ``min_seconds`` where the next cue leaves room (else the next cue starts a
little later); a word timed longer than ``max_seconds`` (Whisper sometimes stretches one over a
pause) is shown only that long, so no cue is ever longer.  A segment without word timings is
spread over its time word by word, in proportion to their lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.pipeline.asr import Segment, Word

BREAK_AFTER = (",", ";", ":", ".", "?", "!", "…", "—", "–")
BREAK_BEFORE = frozenset(
    {
        "and", "but", "or", "so", "because", "that", "which", "who", "when", "where", "while",
        "if", "then", "than", "to", "with", "for", "of", "in", "on", "at",
        "и", "а", "но", "или", "что", "чтобы", "потому", "когда", "где", "если", "как", "который",
        "которая", "которые", "в", "на", "с", "по", "для",
    }
)  # fmt: skip
"""Words a line may begin with at a natural break (conjunctions, prepositions)."""


@dataclass(frozen=True)
class CueRules:
    max_line_chars: int = 42
    max_lines: int = 2
    max_seconds: float = 7.0
    min_seconds: float = 1.0


DEFAULT_CUES = CueRules()


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None = None


def layout(
    segments: Sequence[Segment], rules: CueRules = DEFAULT_CUES, labels: bool = False
) -> list[Cue]:
    """The cues of ``segments``.  ``labels``: the first line of a speaker's cue starts with a
    visible label (``SPEAKER_00: `` in srt), which counts against its length."""
    cues: list[Cue] = []
    for segment in segments:
        lead = len(label(segment.speaker)) if labels else 0
        timed = [w for w in segment.words if w.word.strip()] or _spread(segment)
        words = [_clipped(w, rules.max_seconds) for w in timed]
        for group in _groups(words, rules, lead):
            lines = break_lines([w.word.strip() for w in group], rules, lead)
            cues.append(Cue(group[0].start, group[-1].end, lines, segment.speaker))
    return _timed(cues, rules)


def label(speaker: str | None) -> str:
    """The visible speaker label that starts a cue's first line ("" without a speaker)."""
    return f"{speaker}: " if speaker else ""


def _clipped(word: Word, max_seconds: float) -> Word:
    """The word as a cue shows it: from its start for at most ``max_seconds``."""
    if word.end - word.start <= max_seconds:
        return word
    return Word(word.start, word.start + max_seconds, word.word, word.probability)


def _spread(segment: Segment) -> list[Word]:
    """A segment without word timings as words timed in proportion to their lengths (one
    empty word for a segment without text)."""
    tokens = segment.text.split() or [segment.text]
    per_char = (segment.end - segment.start) / max(1, sum(len(t) for t in tokens))
    words: list[Word] = []
    at = segment.start
    for token in tokens:
        end = at + len(token) * per_char
        words.append(Word(at, end, token, 1.0))
        at = end
    return words


def _groups(words: list[Word], rules: CueRules, lead: int) -> list[list[Word]]:
    """Words packed greedily into cues that fit the rules; a cue that is full is ended at its
    last natural break when that keeps at least half of it."""
    out: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        candidate = [*current, word]
        if current and not _fits(candidate, rules, lead):
            cut = _natural_cut(current)
            out.append(current[:cut])
            current = current[cut:]
            while current and not _fits([*current, word], rules, lead):
                out.append(current)
                current = []
        current.append(word)
    if current:
        out.append(current)
    return out


def _fits(words: list[Word], rules: CueRules, lead: int) -> bool:
    if len(words) > 1 and words[-1].end - words[0].start > rules.max_seconds:
        return False
    lines = break_lines([w.word.strip() for w in words], rules, lead)
    return len(lines) <= rules.max_lines and all(
        len(line) + (lead if i == 0 else 0) <= rules.max_line_chars or " " not in line
        for i, line in enumerate(lines)
    )


def _natural_cut(words: list[Word]) -> int:
    """Where to end a full cue: after its last word that ends a clause, if that keeps at least
    half the words; else after all of them."""
    for i in range(len(words) - 1, max(len(words) // 2, 1) - 1, -1):
        if words[i - 1].word.strip().endswith(BREAK_AFTER):
            return i
    return len(words)


def break_lines(tokens: list[str], rules: CueRules, lead: int = 0) -> tuple[str, ...]:
    """Words set in as few lines of at most ``max_line_chars`` as they need (the first line
    ``lead`` shorter), each break at the most natural of the places that fit; a word longer
    than a line gets a line of its own (never split)."""
    if not tokens:
        return ("",)
    text = " ".join(tokens)
    if len(text) + lead <= rules.max_line_chars:
        return (text,)
    best: tuple[float, int] | None = None
    for i in range(1, len(tokens)):
        first, rest = " ".join(tokens[:i]), " ".join(tokens[i:])
        if len(first) + lead > rules.max_line_chars and i > 1:
            break
        cost = _break_cost(tokens, i) + abs(len(first) + lead - len(rest)) / rules.max_line_chars
        if len(rest) > rules.max_line_chars:
            cost += 10.0  # the rest needs more lines: only if nothing better
        if best is None or cost < best[0]:
            best = (cost, i)
    if best is None:
        return (text,)
    i = best[1]
    return (" ".join(tokens[:i]), *break_lines(tokens[i:], rules, 0))


def _break_cost(tokens: list[str], i: int) -> float:
    """How unnatural a line break before ``tokens[i]`` is (lower is better)."""
    if tokens[i - 1].endswith(BREAK_AFTER):
        return 0.0
    if tokens[i].lower().strip("\"'«(") in BREAK_BEFORE:
        return 0.5
    return 1.5


def _timed(cues: list[Cue], rules: CueRules) -> list[Cue]:
    """Each cue on screen at least ``min_seconds`` (at most ``max_seconds``, which wins) and
    never over the next one: lengthened into the gap after it, and where there is none the next
    cue starts a little later."""
    out: list[Cue] = []
    for cue in cues:
        start = max(cue.start, out[-1].end) if out else cue.start
        end = min(max(cue.end, start + rules.min_seconds), start + rules.max_seconds)
        out.append(Cue(start, end, cue.lines, cue.speaker))
    return out
