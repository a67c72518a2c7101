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
