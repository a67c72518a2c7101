"""The main process's Silero VAD (daemon.pipeline.silero) finds on recorded speech exactly what
faster-whisper's finds, with the facts' rule, the pipeline's and rules that reach every branch
(a long span split at its last pause, a short one dropped, a lower threshold of its own)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from daemon.pipeline import silero
from daemon.pipeline.audio import decode_blocks
from daemon.pipeline.facts import VAD
from tests.conftest import need_eval

pytestmark = pytest.mark.eval

RULES = [
    VAD,
    silero.VadRule(min_silence_ms=1000, speech_pad_ms=400, max_speech_s=60.0),  # the pipeline's
    silero.VadRule(min_silence_ms=100, speech_pad_ms=30, max_speech_s=3.0, min_speech_ms=250),
    silero.VadRule(threshold=0.6, neg_threshold=0.2, min_silence_ms=500, speech_pad_ms=0),
    silero.VadRule(),
]
CLIPS = [("asr_en", "jfk.flac"), ("diarization", "sample.wav"), ("asr_ru", "golos-001ce26c.wav")]


@pytest.mark.parametrize("rule", RULES, ids=range(len(RULES)))
@pytest.mark.parametrize("clip", CLIPS, ids=[c[1] for c in CLIPS])
def test_speech_timestamps_are_faster_whispers(rule: silero.VadRule, clip: tuple[str, str]) -> None:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = np.concatenate(list(decode_blocks(need_eval(*clip))))
    options = VadOptions(
        threshold=rule.threshold,
        neg_threshold=rule.neg_threshold,  # type: ignore[arg-type]  # None is its default
        min_speech_duration_ms=rule.min_speech_ms,
        max_speech_duration_s=rule.max_speech_s,
        min_silence_duration_ms=rule.min_silence_ms,
        speech_pad_ms=rule.speech_pad_ms,
    )
    for piece in (audio, audio[: 512 * (audio.size // 512)], audio[:1000]):  # and whole windows
        theirs = [(t["start"], t["end"]) for t in get_speech_timestamps(piece.copy(), options)]
        assert silero.speech_timestamps(piece.copy(), rule) == theirs


def test_the_vad_imports_no_runtime_but_onnxruntime() -> None:
    code = (
        "import sys, numpy as np\n"
        "from daemon.pipeline import facts, silero\n"
        "facts.warm()\n"
        "silero.speech_timestamps(np.zeros(16000, np.float32), facts.VAD)\n"
        "print(' '.join(m for m in ('ctranslate2', 'faster_whisper', 'torch', 'onnxruntime')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["onnxruntime"]
