"""Scoring helpers shared by the benchmarks and the slow tests."""

from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s']|_")


def normalize(text: str) -> str:
    """Lower-case, drop punctuation (keeping in-word apostrophes), fold whitespace."""
    text = unicodedata.normalize("NFKC", text).lower().replace("ё", "е")
    text = _PUNCT.sub(" ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


def load_rttm(path: str) -> list[tuple[float, float, str]]:
    turns = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[0] == "SPEAKER":
                start, dur = float(parts[3]), float(parts[4])
                turns.append((start, start + dur, parts[7]))
    return turns


def load_uem(path: str) -> list[tuple[float, float]]:
    regions = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                regions.append((float(parts[2]), float(parts[3])))
    return regions


def der(
    reference: list[tuple[float, float, str]],
    hypothesis: list[tuple[float, float, str]],
    uem: list[tuple[float, float]] | None = None,
) -> float:
    """Diarization error rate: pyannote.metrics, collar 0, overlap scored, within the UEM."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns: list[tuple[float, float, str]]) -> Annotation:
        ann = Annotation()
        for i, (s, e, who) in enumerate(turns):
            ann[Segment(s, e), i] = who
        return ann

    ref, hyp = annotation(reference), annotation(hypothesis)
    if not uem:  # score the union of both extents, as pyannote would, without its warning
        ends = [e for _, e, _ in reference + hypothesis] or [0.0]
        starts = [s for s, _, _ in reference + hypothesis] or [0.0]
        uem = [(min(starts), max(ends))]
    region = Timeline([Segment(s, e) for s, e in uem])
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return float(metric(ref, hyp, uem=region))
