"""The degenerate-transcript safeguard on real text: transcripts of the evaluation recordings
(their ground truth) pass, what damaged Whisper models really wrote is caught; and a degenerate
ASR result already in the step cache (a real SQLite store) is never served."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.config import Config
from daemon.errors import CacheMiss
from daemon.pipeline.cache import StepCache, params_hash
from daemon.pipeline.degenerate import (
    COMPRESSION_RATIO_LIMIT,
    compression_ratio,
    degenerate,
    degenerate_windows,
    unsound_asr,
)
from daemon.store import open_store
from tests.conftest import need_eval

# What a Whisper base model with scattered flipped bytes (size and mtime kept) wrote for the
# 11 s of jfk.flac (tests/e2e/test_tampered_model.py flips them for real)
DAMAGED = [
    '"' * 224,
    " And so my fellow Americans," + "!" * 220,
    " And so" + "!" * 240,
    " container" * 40,
    " élect" * 40,
    "rek " * 50,
    "bet" * 70,
    "+." * 120,
]
LOOPS = [
    "Thank you. " * 12,
    " So, so, so, so, so, so, so, so, so, so, so, so, so, so, so.",
]
NOT_LOOPS = [
    "No, no, no, no, I said the other one.",
    "It cost 1,000,000,000 dollars.",
    "Ha ha ha ha.",
    "",
    "I",
    "Да, да, да, конечно, да.",
]


def reference_texts() -> list[str]:
    """Every ground-truth transcript of ../shared/eval: the ASR clips' and the words of the
    diarization sample, as one text each."""
    texts = []
    for folder in ("asr_en", "asr_ru"):
        texts += [p.read_text(encoding="utf-8") for p in sorted(need_eval(folder).glob("*.txt"))]
    stm = need_eval("diarization", "sample.stm").read_text(encoding="utf-8")
    texts.append(" ".join(line.split(maxsplit=5)[5] for line in stm.splitlines() if line.strip()))
    return texts


def test_real_transcripts_are_not_degenerate() -> None:
    texts = reference_texts()
    assert len(texts) >= 25
    for text in texts:
        assert degenerate(text) is None, text
        assert compression_ratio(text) < COMPRESSION_RATIO_LIMIT / 2
    assert degenerate_windows(texts) is None  # all of them as one chunk's windows


@pytest.mark.parametrize("text", NOT_LOOPS)
def test_short_repetitions_of_speech_are_not_degenerate(text: str) -> None:
    assert degenerate(text) is None


@pytest.mark.parametrize("text", DAMAGED + LOOPS)
def test_what_damaged_models_wrote_is_degenerate(text: str) -> None:
    assert degenerate(text) is not None


def test_the_reason_names_the_repeated_unit() -> None:
    assert degenerate('"' * 224) == "'\"' repeated 224 times"
    assert str(degenerate(" container" * 40)).startswith("'container' repeated 39 times")


def test_a_loop_in_one_window_is_not_diluted_by_the_others() -> None:
    speech = reference_texts()[:6]
    mixed = [*speech[:3], "Thank you. " * 5 + "!" * 60, *speech[3:]]
    assert compression_ratio(" ".join(mixed)) < COMPRESSION_RATIO_LIMIT
    assert degenerate_windows(mixed) is not None


def asr_payload(texts: list[str]) -> dict[str, object]:
    return {
        "language": "en",
        "segments": [
            {"start": float(i), "end": float(i + 1), "text": t, "words": []}
            for i, t in enumerate(texts)
        ],
    }


def test_a_degenerate_asr_result_in_the_cache_is_dropped_and_computed_again(
    config: Config,
) -> None:
    """What requeue served after the model was repaired: the garbage cached by the damaged
    model.  A real SQLite store: the row is replaced, and the good result served after."""
    store = open_store(config)
    now = datetime.now(UTC)
    good = asr_payload([need_eval("asr_en", "jfk.txt").read_text(encoding="utf-8")])
    calls = []

    def compute() -> dict[str, object]:
        calls.append(1)
        return good

    cache = StepCache(store.results, "a" * 64, lambda: now)
    params = {"model": "base:905e5bf8336bcc62:int8", "language": "en"}
    store.results.cache_put("a" * 64, "asr", params_hash(params), asr_payload(DAMAGED[:1]), now)
    assert cache.run("asr", params, compute, unsound=unsound_asr) == good
    assert calls == [1]
    assert cache.stats.computed["asr"] == 1 and not cache.stats.cached
    assert store.results.cache_get("a" * 64, "asr", params_hash(params)) == good
    assert cache.run("asr", params, compute, unsound=unsound_asr) == good
    assert calls == [1]  # now served from the cache
    store.close()


def test_a_cache_only_run_never_serves_a_degenerate_result(config: Config) -> None:
    store = open_store(config)
    now = datetime.now(UTC)
    params = {"model": "base:905e5bf8336bcc62:int8"}
    store.results.cache_put("b" * 64, "asr", params_hash(params), asr_payload(LOOPS), now)
    cache = StepCache(store.results, "b" * 64, lambda: now, cache_only=True)
    with pytest.raises(CacheMiss, match="unsound"):
        cache.run("asr", params, lambda: None, unsound=unsound_asr)
    assert store.results.cache_get("b" * 64, "asr", params_hash(params)) is None
    store.close()
