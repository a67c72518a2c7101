"""``max_cue_seconds`` holds for every cue, in srt and vtt, whatever the word timings: a word
Whisper stretched over a pause (" let's" from 10.3 s to 26.8 s) is shown from its start for at
most that long, alone or at the start, middle or end of a segment, and so are segments without
word timings; a seeded sweep over many random segments finds no cue over the limit."""

from __future__ import annotations

import io
import itertools
import random

import pytest
import srt
import webvtt

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.cues import Cue, CueRules, layout
from daemon.pipeline.outputs import Transcript, render_srt, render_vtt

RULES = CueRules()
LONG = Word(10.3, 26.8, " let's", 0.41)
"""The word of the report: 16.5 s on screen before the limit held."""


def timed(text: str, start: float, step: float = 0.4) -> list[Word]:
    return [
        Word(start + i * step, start + i * step + step * 0.9, f" {w}", 0.9)
        for i, w in enumerate(text.split())
    ]


def segment(words: list[Word], speaker: str | None = "SPEAKER_00") -> Segment:
    text = "".join(w.word for w in words).strip()
    return Segment(words[0].start, words[-1].end, text, tuple(words), speaker)


def transcript(segments: list[Segment]) -> Transcript:
    speakers = tuple(dict.fromkeys(s.speaker for s in segments if s.speaker))
    end = max(s.end for s in segments)
    return Transcript("/in/a.wav", "a" * 64, end, "en", "fast", "base", tuple(segments), speakers)


def within(cues: list[Cue], rules: CueRules = RULES) -> None:
    for c in cues:
        assert 0 < c.end - c.start <= rules.max_seconds + 1e-9, c
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start + 1e-9, (a, b)


def seconds(clock: str) -> float:
    """A WebVTT time (hh:mm:ss.mmm) in seconds."""
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def rendered_within(t: Transcript, rules: CueRules = RULES) -> list[tuple[float, float, str]]:
    """The srt and vtt cues as real parsers read them back, each within the limit (to the
    millisecond both formats keep); srt's (start, end, text)."""
    subs = list(srt.parse(render_srt(t, rules)))
    for s in subs:
        assert (s.end - s.start).total_seconds() <= rules.max_seconds + 0.0015, s
    captions = webvtt.from_buffer(io.StringIO(render_vtt(t, rules)))
    for c in captions:
        assert seconds(c.end) - seconds(c.start) <= rules.max_seconds + 0.0015, c
    return [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs]


def test_one_long_word_alone_is_shown_from_its_start_for_the_limit() -> None:
    t = transcript([segment([LONG])])
    (cue,) = layout(t.segments, RULES)
    assert (cue.start, cue.end) == pytest.approx((10.3, 17.3))
    assert cue.lines == ("let's",)
    assert rendered_within(t) == [(10.3, 17.3, "SPEAKER_00: let's")]


@pytest.mark.parametrize(
    ("before", "after"),
    [("", "go and see what the committee decided"), ("so", "go"), ("well then", "")],
    ids=["at the start", "in the middle", "at the end"],
)
def test_a_long_word_inside_a_segment_keeps_its_start_and_the_limit(
    before: str, after: str
) -> None:
    words = [*timed(before, LONG.start - 0.4 * len(before.split())), LONG]
    words += timed(after, LONG.end)
    t = transcript([segment(words), segment(timed("Right.", 30.0), "SPEAKER_01")])
    cues = layout(t.segments, RULES)
    within(cues)
    said = " ".join(" ".join(c.lines) for c in cues)
    assert said == " ".join(f"{before} let's {after} Right.".split())  # every word, in order
    shown = next(c for c in cues if "let's" in " ".join(c.lines))
    assert shown.end <= LONG.start + RULES.max_seconds + 1e-9
    if not before:
        assert shown.start == LONG.start  # the word's start keeps its time
    rendered_within(t)


@pytest.mark.parametrize("rules", [CueRules(max_seconds=3.0), CueRules(max_seconds=0.5)])
def test_the_limit_holds_under_other_settings_even_below_the_minimum(rules: CueRules) -> None:
    """A limit below ``min_seconds`` (1 s) wins over it."""
    t = transcript([segment([*timed("so", 9.8), LONG, *timed("go on", 26.8)])])
    within(layout(t.segments, rules), rules)
    rendered_within(t, rules)


def test_a_long_segment_without_word_timings_is_spread_over_cues() -> None:
    text = "and so we waited for the results of the vote for the whole of the afternoon"
    t = transcript([Segment(4.0, 24.0, text, (), "SPEAKER_00")])
    cues = layout(t.segments, RULES)
    within(cues)
    assert len(cues) >= 3 and cues[0].start == 4.0
    assert " ".join(" ".join(c.lines) for c in cues) == text
    assert all(len(line) <= RULES.max_line_chars for c in cues for line in c.lines)
    rendered_within(t)


def random_segments(rng: random.Random) -> list[Segment]:
    """Segments of a few random words, some stretched far past any limit, some overlapping
    the previous segment (Whisper's timings are not always tidy), a few without words."""
    segments: list[Segment] = []
    at = rng.uniform(0.0, 5.0)
    for _ in range(rng.randint(1, 8)):
        words = []
        for _ in range(rng.randint(1, 25)):
            length = rng.choice([0.0, 0.1, 0.3, 0.6]) if rng.random() > 0.15 else rng.uniform(5, 30)
            token = "".join(rng.choices("abcdefghij", k=rng.randint(1, 14)))
            words.append(Word(at, at + length, f" {token}{rng.choice(['', ',', '.'])}", 0.5))
            at += length + rng.choice([0.0, 0.05, 0.5, 3.0])
        speaker = rng.choice([None, "SPEAKER_00", "SPEAKER_01"])
        if rng.random() < 0.1:
            text = "".join(w.word for w in words).strip()
            segments.append(Segment(words[0].start, words[-1].end, text, (), speaker))
        else:
            segments.append(segment(words, speaker))
        at -= rng.choice([0.0, 0.0, 0.0, 1.0])
    return segments


def test_no_cue_of_many_random_segments_exceeds_the_limit() -> None:
    rng = random.Random(32)
    for case in range(400):
        rules = CueRules(
            max_line_chars=rng.choice([20, 32, 42]),
            max_lines=rng.choice([1, 2, 3]),
            max_seconds=rng.choice([0.5, 2.0, 4.0, 7.0, 10.0]),
        )
        segments = random_segments(rng)
        for labels in (False, True):
            cues = layout(segments, rules, labels=labels)
            assert cues, case
            for c in cues:
                assert c.end - c.start <= rules.max_seconds + 1e-9, (case, rules, c)
            for a, b in itertools.pairwise(cues):
                assert a.end <= b.start + 1e-9, (case, a, b)
        if case % 20 == 0:  # the writers too, as parsers read them back
            rendered_within(transcript(segments), rules)
