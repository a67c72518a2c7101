"""Subtitle cues: broadcast line length, lines per cue, time on screen, natural breaks, and
srt/vtt that real parsers read back."""

from __future__ import annotations

import io
import itertools

import pytest
import srt
import webvtt

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.cues import Cue, CueRules, break_lines, label, layout
from daemon.pipeline.outputs import Transcript, render_srt, render_vtt

RULES = CueRules()


def words(text: str, start: float = 0.0, step: float = 0.35) -> tuple[Word, ...]:
    return tuple(
        Word(start + i * step, start + i * step + step * 0.9, f" {w}", 0.9)
        for i, w in enumerate(text.split())
    )


def segment(
    text: str, start: float = 0.0, speaker: str | None = None, step: float = 0.35
) -> Segment:
    ws = words(text, start, step)
    return Segment(ws[0].start, ws[-1].end, text, ws, speaker)


LONG = (
    "So the thing about the committee meeting last Tuesday, and I think everyone here agrees, "
    "is that nobody had read the proposal before we voted on it, which is exactly the problem "
    "that we keep running into whenever the budget comes up for discussion in the spring."
)


def obeys(cues: list[Cue], rules: CueRules = RULES, labels: bool = False) -> None:
    for c in cues:
        assert 1 <= len(c.lines) <= rules.max_lines, c
        for i, line in enumerate(c.lines):
            lead = len(label(c.speaker)) if labels and i == 0 else 0
            assert len(line) + lead <= rules.max_line_chars or " " not in line, (line, c)
        assert rules.min_seconds - 1e-6 <= c.end - c.start <= rules.max_seconds + 1e-6, c
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start + 1e-6, (a, b)


def test_a_long_sentence_becomes_cues_that_follow_the_rules() -> None:
    seg = segment(LONG)
    cues = layout([seg], RULES)
    obeys(cues)
    assert len(cues) >= 4
    said = " ".join(" ".join(c.lines) for c in cues)
    assert said == LONG  # every word, in order, none split


def test_lines_break_after_punctuation_or_before_a_conjunction() -> None:
    market = "I went to the market on Friday, and bought apples and pears"
    lines = break_lines(market.split(), RULES)
    assert lines == ("I went to the market on Friday,", "and bought apples and pears")
    bus = "We waited for the bus for nearly an hour because it rained"
    lines = break_lines(bus.split(), RULES)
    assert lines[1].startswith(("because", "for")), lines


def test_a_cue_never_lasts_more_than_max_seconds() -> None:
    slow = segment("one two three four five six seven eight", step=1.5)  # 12 s of few words
    cues = layout([slow], RULES)
    obeys(cues)
    assert len(cues) >= 2


def test_each_speaker_change_starts_a_cue_and_short_cues_get_a_second() -> None:
    segs = [
        segment("Yes.", 0.0, "SPEAKER_00"),
        segment("No, I do not think so.", 0.5, "SPEAKER_01"),
        segment("Why not?", 3.0, "SPEAKER_00"),
    ]
    cues = layout(segs, RULES)
    assert [c.speaker for c in cues] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    obeys(cues)
    assert cues[1].start == pytest.approx(1.0)  # after the first one's second on screen


def test_a_word_longer_than_a_line_stays_whole() -> None:
    url = "https://example.org/a/very/long/path/that/does/not/fit/in/one/line"
    cues = layout([segment(f"see {url} for details")], RULES)
    assert url in [line for c in cues for line in c.lines]
    obeys(cues)


def test_srt_labels_count_against_the_line() -> None:
    name = "A_RATHER_LONG_SPEAKER_NAME"
    text = render_srt(transcript([segment(LONG, speaker=name)]), RULES)
    first_lines = [b.split("\n")[2] for b in text.strip().split("\n\n")]
    assert all(line.startswith(f"{name}: ") and len(line) <= 42 for line in first_lines)


@pytest.mark.parametrize(
    "rules", [CueRules(), CueRules(max_line_chars=32, max_lines=1, max_seconds=4.0)]
)
def test_srt_and_vtt_parse_back_and_obey(rules: CueRules) -> None:
    t = transcript(
        [segment(LONG, 0.0, "SPEAKER_00"), segment("Right. Next item.", 70.0, "SPEAKER_01")]
    )
    subs = list(srt.parse(render_srt(t, rules)))
    assert len(subs) >= 5 and [s.index for s in subs] == list(range(1, len(subs) + 1))
    for s in subs:
        lines = s.content.split("\n")
        assert len(lines) <= rules.max_lines
        assert all(len(line) <= rules.max_line_chars for line in lines), lines
        seconds = (s.end - s.start).total_seconds()
        assert rules.min_seconds - 0.002 <= seconds <= rules.max_seconds + 0.002
    captions = webvtt.from_buffer(io.StringIO(render_vtt(t, rules)))
    said = " ".join(c.text.replace("\n", " ") for c in captions)
    assert said == f"{LONG} Right. Next item."
    for c in captions:
        assert all(len(line) <= rules.max_line_chars for line in c.text.split("\n"))
        assert c.voice in ("SPEAKER_00", "SPEAKER_01")


def transcript(segments: list[Segment]) -> Transcript:
    speakers = tuple(dict.fromkeys(s.speaker for s in segments if s.speaker))
    end = segments[-1].end
    return Transcript("/in/a.wav", "a" * 64, end, "en", "fast", "base", tuple(segments), speakers)
