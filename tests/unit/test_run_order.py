"""The step runner's order when diarization runs beside the ASR: diarization starts before the
language is detected, and stops at its next checkpoint when the ASR side fails, so the job
fails at once instead of after the whole diarization.  The models are stand-ins: this is about
the runner, not about them (tests/e2e runs the real ones)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.errors import Cancelled
from daemon.modelstore import ResolvedModel
from daemon.pipeline import run, steps
from daemon.pipeline.cache import StepCache
from daemon.pipeline.merge import WindowDiarization
from daemon.pipeline.spool import Spool
from daemon.pipeline.vad import Region
from daemon.profiles import BUILTIN
from daemon.threads import split
from tests.conftest import MemoryCacheStore


def test_a_failing_language_detection_stops_the_diarization_beside_it(tmp_path: Path) -> None:
    seconds = 20
    spool = Spool(tmp_path / "spool.pcm", tmp_path / "in.wav")
    spool.path.write_bytes(np.zeros(16000 * seconds, np.int16).tobytes())
    spool.samples = 16000 * seconds
    speech = steps.Speech(samples=16000 * seconds, regions=[Region(1.0, 19.0)])
    started, stopped = threading.Event(), threading.Event()

    def diarizer(audio: Any, hook: Any = None, **_: Any) -> WindowDiarization:
        started.set()
        try:
            for _step in range(3000):  # 30 s unless stopped
                hook("embeddings")
                time.sleep(0.01)
        except Cancelled:
            stopped.set()
            raise
        return WindowDiarization((), {})

    def choose_model() -> tuple[steps.AsrChoice, str]:
        assert started.wait(10), "diarization had not started before the language detection"
        raise RuntimeError("the language model cannot load")

    model = ResolvedModel("base", tmp_path, "base:test", multilingual=True)
    job = run.JobInput(
        path=tmp_path / "in.wav",
        sha256="abc",
        profile=BUILTIN["fast"],
        language="auto",
        model=model,
        threads=split(2, overlap=True, diarize=True),
    )
    cache = StepCache(MemoryCacheStore(), "abc", lambda: None)
    models = run.Loaders(asr=lambda: pytest.fail("no ASR model"), diarizer=lambda: diarizer)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="cannot load"):
        run._transcribe_and_diarize(
            job, cache, models, spool, speech, [], choose_model, lambda _f: None, lambda: None
        )
    assert stopped.is_set()
    assert time.monotonic() - began < 5  # not the 30 s the diarization would have taken
