"""Pure speaker attribution: words x speaker turns -> speaker-attributed segments.

Each word gets the speaker whose turn overlaps it most (the nearest turn when none overlaps);
segments are split where the speaker changes.  Labels are ``SPEAKER_00``, ``SPEAKER_01``, ... in
order of first appearance.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from daemon.pipeline.asr import Segment, Word
from daemon.voices import distance


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


def new_labels(turns: Sequence[Turn]) -> dict[str, str]:
    """Each speaker's new label: SPEAKER_00, SPEAKER_01, ... in order of first appearance."""
    names: dict[str, str] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        names.setdefault(t.speaker, f"SPEAKER_{len(names):02d}")
    return names


def relabel(turns: Sequence[Turn]) -> list[Turn]:
    """Rename speakers to SPEAKER_00, SPEAKER_01, ... in order of first appearance."""
    names = new_labels(turns)
    return [
        replace(t, speaker=names[t.speaker]) for t in sorted(turns, key=lambda t: (t.start, t.end))
    ]


def speakers_of(turns: Sequence[Turn]) -> list[str]:
    """Distinct speakers in order of first appearance."""
    seen: dict[str, None] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        seen.setdefault(t.speaker, None)
    return list(seen)


class _Index:
    """Turns sorted by start, for overlap and nearest-turn queries."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = sorted(turns, key=lambda t: (t.start, t.end))
        self.starts = [t.start for t in self.turns]
        self.max_len = max((t.end - t.start for t in self.turns), default=0.0)

    def speaker(self, start: float, end: float) -> str | None:
        if not self.turns:
            return None
        lo = bisect.bisect_left(self.starts, start - self.max_len)
        hi = bisect.bisect_right(self.starts, end)
        overlap: dict[str, float] = {}
        for t in self.turns[lo:hi]:
            o = min(end, t.end) - max(start, t.start)
            if o > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
        if overlap:
            return max(overlap.items(), key=lambda kv: kv[1])[0]
        mid = (start + end) / 2
        nearest = min(
            self.turns[max(0, lo - 1) : min(len(self.turns), hi + 1)] or self.turns,
            key=lambda t: max(t.start - mid, mid - t.end, 0.0),
        )
        return nearest.speaker


def attribute(segments: Sequence[Segment], turns: Sequence[Turn]) -> list[Segment]:
    """Give every word and segment a speaker; split segments where the speaker changes."""
    index = _Index(turns)
    out: list[Segment] = []
    for seg in segments:
        if not seg.words:
            out.append(replace(seg, speaker=index.speaker(seg.start, seg.end)))
            continue
        run: list[Word] = []
        run_speaker: str | None = None
        for word in seg.words:
            who = index.speaker(word.start, max(word.end, word.start + 1e-3))
            if run and who != run_speaker:
                out.append(_segment(run, run_speaker))
                run = []
            run.append(word)
            run_speaker = who
        out.append(_segment(run, run_speaker))
    return out


def _segment(words: list[Word], speaker: str | None) -> Segment:
    text = "".join(w.word for w in words).strip()
    return Segment(
        start=words[0].start, end=words[-1].end, text=text, words=tuple(words), speaker=speaker
    )


@dataclass(frozen=True)
class WindowDiarization:
    """Diarization of one window of a long file: turns on the file's timeline (window-local
    labels) and one centroid embedding per local label."""

    turns: tuple[Turn, ...]
    centroids: dict[str, tuple[float, ...]]
    timing: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)
    """Where a freshly computed diarization spent its time: part -> (wall, CPU seconds)."""


def _distance(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    """Cosine distance; 2 (the largest) when either side has no embedding."""
    return 2.0 if a is None or b is None else distance(a, b)


def _mean(
    a: list[float] | None, wa: float, b: Sequence[float] | None, wb: float
) -> list[float] | None:
    if a is None or b is None:
        return list(b) if a is None and b is not None else a
    total = wa + wb
    return [(x * wa + y * wb) / total for x, y in zip(a, b, strict=True)]


def link_windows(
    windows: Sequence[WindowDiarization], threshold: float, max_speakers: int | None = None
) -> WindowDiarization:
    """Give window-local speakers file-wide identities (pure): the file's turns, and each
    file-wide speaker's centroid (its voice print, see :mod:`daemon.voices`).

    Windows are taken in order.  Each window's speakers are matched one-to-one to the global
    speakers seen so far by cosine distance between centroids (Hungarian assignment, so two
    voices of one window never merge); a match farther than ``threshold`` starts a new global
    speaker.  Global centroids are running means weighted by speech time.  With
    ``max_speakers``, the closest global speakers are then merged until the count fits.
    Labels are finally renamed in order of first appearance.  A speaker too short to embed
    has no centroid.
    """
    centroids: list[list[float] | None] = []
    weights: list[float] = []
    parent: list[int] = []
    linked: list[tuple[Turn, int]] = []
    for window in windows:
        speech: dict[str, float] = {}
        for t in window.turns:
            speech[t.speaker] = speech.get(t.speaker, 0.0) + (t.end - t.start)
        local = [s for s in window.centroids if s in speech]
        mapping = _matches(window, local, centroids, threshold)
        for s in local:
            vec = list(window.centroids[s])
            if s in mapping:
                g = mapping[s]
                centroids[g] = _mean(centroids[g], weights[g], vec, speech[s])
                weights[g] += speech[s]
            else:
                mapping[s] = len(centroids)
                centroids.append(vec)
                weights.append(speech[s])
                parent.append(len(parent))
        # a voice too short to embed cannot be linked: it keeps an identity of its own
        for s in speech:
            if s not in mapping:
                mapping[s] = len(centroids)
                centroids.append(None)
                weights.append(speech[s])
                parent.append(len(parent))
        linked.extend((t, mapping[t.speaker]) for t in window.turns)

    if max_speakers is not None:
        _merge_closest(centroids, weights, parent, max(1, max_speakers))
    global_turns = [replace(t, speaker=f"g{_root(parent, g)}") for t, g in linked]
    names = new_labels(global_turns)
    prints = {
        names[f"g{g}"]: tuple(vec)
        for g, vec in enumerate(centroids)
        if vec is not None and f"g{g}" in names
    }
    return WindowDiarization(turns=tuple(relabel(global_turns)), centroids=prints)


def _matches(
    window: WindowDiarization,
    local: list[str],
    centroids: list[list[float] | None],
    threshold: float,
) -> dict[str, int]:
    """The window's speakers (``local``, those with a centroid) matched one-to-one to the
    global speakers so far (Hungarian assignment on cosine distance), where no farther than
    ``threshold``: local speaker -> global index."""
    from scipy.optimize import linear_sum_assignment

    mapping: dict[str, int] = {}
    if centroids and local:
        cost = [[_distance(window.centroids[s], c) for c in centroids] for s in local]
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            if cost[r][c] <= threshold:
                mapping[local[r]] = int(c)
    return mapping


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        i = parent[i]
    return i


def _merge_closest(
    centroids: list[list[float] | None], weights: list[float], parent: list[int], most: int
) -> None:
    """Merge the closest global speakers (the lighter pair first among equals) until at most
    ``most`` remain; ``parent`` records which speaker each was merged into."""
    while len(roots := sorted({_root(parent, i) for i in range(len(centroids))})) > most:
        a, b = min(
            ((x, y) for i, x in enumerate(roots) for y in roots[i + 1 :]),
            key=lambda p: (
                _distance(centroids[p[0]], centroids[p[1]]),
                min(weights[p[0]], weights[p[1]]),
            ),
        )
        centroids[a] = _mean(centroids[a], weights[a], centroids[b], weights[b])
        weights[a] += weights[b]
        parent[b] = a
