"""What the pages show, as plain data (pure): a transcript as speaker turns of timed lines, each
speaker's name, colour and speech time, the timeline of who spoke when, a job's folder, times
as people read them.  The templates only lay these out (and escape every string)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.pipeline.outputs import Transcript

COLOURS = 10
"""Speaker colours the style sheet has (``spk-0`` ... ``spk-9``); more speakers reuse them."""


@dataclass(frozen=True)
class Line:
    start: float
    end: float
    label: str
    """The diarized speaker ("SPEAKER_00"; "" where the file was not diarized)."""
    text: str


@dataclass(frozen=True)
class Turn:
    label: str
    name: str
    colour: int
    lines: tuple[Line, ...]

    @property
    def start(self) -> float:
        return self.lines[0].start


@dataclass(frozen=True)
class Speaker:
    label: str
    name: str
    colour: int
    seconds: float


@dataclass(frozen=True)
class Span:
    """A stretch of the timeline: one speaker's turn as diarized."""

    start: float
    end: float
    label: str
    colour: int


def colours(labels: Sequence[str]) -> dict[str, int]:
    """A colour for each speaker, in order of first appearance."""
    return {label: i % COLOURS for i, label in enumerate(dict.fromkeys(labels))}


def turns(t: Transcript, names: Mapping[str, str]) -> list[Turn]:
    """The transcript's segments as turns: consecutive segments of one speaker together."""
    palette = colours(list(t.speakers) + [s.speaker or "" for s in t.segments])
    out: list[Turn] = []
    for s in t.segments:
        label = s.speaker or ""
        line = Line(round(s.start, 3), round(s.end, 3), label, s.text.strip())
        if out and out[-1].label == label:
            last = out[-1]
            out[-1] = Turn(last.label, last.name, last.colour, (*last.lines, line))
        else:
            out.append(Turn(label, names.get(label, label), palette.get(label, 0), (line,)))
    return out


def speakers(t: Transcript, names: Mapping[str, str]) -> list[Speaker]:
    """Each diarized speaker, with the time they speak (from the diarized turns)."""
    palette = colours(list(t.speakers))
    seconds: dict[str, float] = {}
    for turn in t.turns:
        seconds[turn.speaker] = seconds.get(turn.speaker, 0.0) + (turn.end - turn.start)
    return [
        Speaker(label, names.get(label, label), palette[label], round(seconds.get(label, 0.0), 1))
        for label in t.speakers
    ]


def timeline(t: Transcript) -> list[Span]:
    """Who spoke when, as diarized."""
    palette = colours(list(t.speakers))
    return [
        Span(round(x.start, 3), round(x.end, 3), x.speaker, palette.get(x.speaker, 0))
        for x in t.turns
    ]


def folder_of(path: str, watched: Sequence[Path], uploads: Path) -> str:
    """Where a job's file came from, as the queue's folder filter names it: the watched
    folder holding it, "uploads" for the HTTP face's, else "elsewhere"."""
    p = Path(path)
    if p.is_relative_to(uploads):
        return "uploads"
    for folder in watched:
        if p.is_relative_to(folder):
            return str(folder)
    return "elsewhere"
