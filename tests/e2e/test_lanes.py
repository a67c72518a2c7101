"""Chunks of one file transcribed side by side on CTranslate2 lanes (real model, real speech)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.metrics import wer
from daemon.config import Config
from daemon.jobrun import run_pipeline
from daemon.jobs import JobOptions
from daemon.pipeline.asr import AsrModel
from daemon.store import open_store
from daemon.warm import WarmModels
from tests.conftest import lj_clips, speech_file

pytestmark = [pytest.mark.model, pytest.mark.eval]


def test_chunks_of_one_file_run_in_parallel_lanes_with_the_same_text(
    make_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = lj_clips()
    audio = speech_file(tmp_path / "lj.wav", clips)
    reference = " ".join(c.with_suffix(".txt").read_text() for c in clips)
    config = make_config(diarization={"enabled": False}, pipeline={"profile": "fast"})
    in_flight, most = [0], [0]
    lock = threading.Lock()
    real = AsrModel.transcribe

    def counting(self: AsrModel, *args: Any, **kwargs: Any) -> Any:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            return real(self, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(AsrModel, "transcribe", counting)
    texts = {}
    store = open_store(config)
    for threads in (2, 1):
        models = WarmModels(config.models.cache_dir)
        most[0] = 0
        result = run_pipeline(
            config,
            models,
            store,
            audio,
            f"sha-{threads}",
            JobOptions(language="en"),
            threads=threads,
        )
        assert result.stats.computed["asr"] >= 3  # 30-s chunks of ~2 min of speech
        (model,) = models._asr.values()
        assert (model.lanes, most[0]) == ((2, 2) if threads == 2 else (1, 1))
        texts[threads] = " ".join(s.text for s in result.transcript.segments)
    assert wer(reference, texts[2]) <= 0.12, texts[2]
    assert wer(texts[1], texts[2]) <= 0.03
