"""Named voices: which diarized speaker is which enrolled person (pure).

A *voice print* is a speaker's centroid embedding as diarization computes it (CAM++ embeddings
of the speaker's speech, averaged; see :func:`daemon.pipeline.merge.link_windows`).  An enrolled
:class:`Voice` is the speech-weighted mean of the prints of its enrollment recordings, kept with
the identity of the weights that made it: prints of other weights are not comparable, so such a
voice names nobody until it is enrolled again.

A diarized speaker gets a voice's name when its print lies within ``max_distance`` (cosine
distance) of the voice's; speakers and voices are paired one to one at the least total distance,
so two speakers never get the same name.  ``max_distance`` is calibrated on the dev set for at
most 1 % false matches (bench/voices.py, bench/RESULTS.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NAME_MAX = 64
LABEL = re.compile(r"SPEAKER_\d+")
"""The labels of unnamed speakers: a voice may not be called like one."""
ENROLL_SHARE = 0.6
"""An enrollment recording's main speaker must have at least this share of its speech: where
another voice speaks about as much, which one to enroll is a guess."""


@dataclass(frozen=True)
class Voice:
    name: str
    embedding: tuple[float, ...]
    weights: str
    """Identity of the diarization weights that made the print."""
    seconds: float
    """Speech behind the print."""
    files: tuple[str, ...] = ()
    """The enrollment recordings (printable names)."""


@dataclass(frozen=True)
class Match:
    speaker: str
    """The diarized label (``SPEAKER_xx``)."""
    name: str
    distance: float


@dataclass(frozen=True)
class MainSpeaker:
    """The speaker of an enrollment recording: the one with the most speech."""

    label: str
    seconds: float
    share: float
    """Its share of all the speech diarization found."""
    others: int
    """How many other speakers were found."""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a voice, or None."""
    if not name or name != name.strip():
        return "a voice's name must not be empty nor start or end with a space"
    if len(name) > NAME_MAX:
        return f"a voice's name has at most {NAME_MAX} characters"
    if not name.isprintable():
        return "a voice's name must be printable (no tabs or line breaks)"
    if LABEL.fullmatch(name):
        return f"'{name}' is how unnamed speakers are labelled; choose another name"
    return None


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine distance (0: same direction; 2 when either vector is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 2.0
    return 1.0 - dot / (na * nb)


def usable(voices: Sequence[Voice], weights: str) -> list[Voice]:
    """The voices enrolled with these weights (the others' prints are not comparable)."""
    return [v for v in voices if v.weights == weights]


def match(
    prints: Mapping[str, Sequence[float]], voices: Sequence[Voice], max_distance: float
) -> list[Match]:
    """Pair speakers with voices one to one at the least total distance; pairs farther than
    ``max_distance`` are no match.  Ordered by speaker label."""
    from scipy.optimize import linear_sum_assignment

    speakers = sorted(prints)
    if not speakers or not voices:
        return []
    far = max_distance + 10.0  # dearer than any allowed pair: the most matches come first
    distances = [[distance(prints[s], v.embedding) for v in voices] for s in speakers]
    cost = [[d if d <= max_distance else far for d in row] for row in distances]
    rows, cols = linear_sum_assignment(cost)
    out = [
        Match(speakers[r], voices[c].name, round(distances[r][c], 4))
        for r, c in zip(rows, cols, strict=True)
        if distances[r][c] <= max_distance
    ]
    return sorted(out, key=lambda m: m.speaker)


def names(matches: Sequence[Match], manual: Mapping[str, str]) -> dict[str, str]:
    """Each label's name: the user's own renames first, then the voice matches (a voice name
    a rename already gave to another speaker is not given twice)."""
    taken = set(manual.values())
    out = dict(manual)
    for m in matches:
        if m.speaker not in out and m.name not in taken:
            out[m.speaker] = m.name
            taken.add(m.name)
    return out


def main_speaker(
    speech: Mapping[str, float], prints: Mapping[str, Sequence[float]]
) -> MainSpeaker | None:
    """Of the speakers (``speech``: seconds of each), the one with the most speech among those
    with a print (None: nobody spoke long enough to be embedded)."""
    candidates = [s for s in speech if s in prints]
    if not candidates:
        return None
    label = max(candidates, key=lambda s: (speech[s], s))
    total = sum(speech.values())
    return MainSpeaker(label, speech[label], speech[label] / total, len(speech) - 1)


def enrolled(
    name: str,
    prints: Sequence[tuple[Sequence[float], float, str]],
    weights: str,
    before: Voice | None = None,
) -> Voice:
    """The voice ``name`` from ``prints`` (print, seconds of speech, file) and, when it was
    enrolled before with the same weights, its earlier print: the speech-weighted mean."""
    parts = [(list(p), s) for p, s, _f in prints]
    files = [f for _p, _s, f in prints]
    if before is not None and before.weights == weights:
        parts.insert(0, (list(before.embedding), before.seconds))
        files = [*before.files, *files]
    seconds = sum(s for _p, s in parts)
    size = len(parts[0][0])
    mean = tuple(sum(p[i] * s for p, s in parts) / seconds for i in range(size))
    return Voice(name, mean, weights, round(seconds, 3), tuple(dict.fromkeys(files)))
