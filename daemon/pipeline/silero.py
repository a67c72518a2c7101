"""The Silero VAD for the daemon's main process: faster-whisper's own model file and rule, run
on ONNX Runtime without importing faster-whisper.

The intake measures each new file's speech share in the daemon's main process
(:mod:`daemon.pipeline.facts`).  ``faster_whisper.vad`` would do it, but importing any part of
faster-whisper runs its package's ``__init__``, which imports CTranslate2 (and tokenizers and
huggingface_hub): the main process then held what only workers need.  So the model file is
found through faster-whisper's package folder (never imported), run as
``faster_whisper.vad.SileroVADModel`` runs it, and :func:`speech_timestamps` is faster-whisper's
``get_speech_timestamps`` (adapted from snakers4/silero-vad; both MIT), split into its two
passes.  ``tests/integration/test_silero.py`` holds both to faster-whisper's on recorded speech.

The pipeline's own VAD step (:mod:`daemon.pipeline.vad`, in the workers) still calls
faster-whisper's.  The cost here is ONNX Runtime's import and one session of a 2-MB model.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daemon.pipeline.audio import SAMPLE_RATE, Audio

WINDOW = 512
"""Samples per Silero window at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the window before that Silero sees with each window."""
BATCH = 10000
"""Windows per call of the network."""


@dataclass(frozen=True)
class VadRule:
    """faster-whisper's ``VadOptions``: its defaults, its meanings."""

    threshold: float = 0.5
    neg_threshold: float | None = None
    """Below this a window is silence (None: ``threshold`` - 0.15, at least 0.01)."""
    min_speech_ms: int = 0
    max_speech_s: float = float("inf")
    min_silence_ms: int = 2000
    speech_pad_ms: int = 400


def model_path() -> Path:
    """faster-whisper's Silero model (its package folder found, not imported)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("faster-whisper is not installed (its Silero VAD model is needed)")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "silero_vad_v6.onnx"


@functools.cache
def session() -> Any:
    """The model's ONNX Runtime session, one thread and no memory arena, as faster-whisper
    makes it (once per process)."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        str(model_path()), providers=["CPUExecutionProvider"], sess_options=opts
    )


def probabilities(audio: Audio) -> np.ndarray:
    """Speech probability of each :data:`WINDOW` of 16 kHz ``audio`` (its length a multiple of
    the window), each window seen with the :data:`CONTEXT` samples before it.  As in
    faster-whisper, the last window's own last :data:`CONTEXT` samples are zeroed in ``audio``
    (the context is cut as a view of it)."""
    windows = audio.reshape(-1, WINDOW)
    context = windows[..., -CONTEXT:]
    context[-1] = 0
    context = np.roll(context, 1, 0)
    batched = np.concatenate([context, windows], 1)
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    outputs = []
    for i in range(0, batched.shape[0], BATCH):
        out, h, c = session().run(None, {"input": batched[i : i + BATCH], "h": h, "c": c})
        outputs.append(out)
    return np.concatenate(outputs, axis=0)


def speech_timestamps(audio: Audio, rule: VadRule) -> list[tuple[int, int]]:
    """(start, end) samples of the speech in 16 kHz ``audio``, as faster-whisper's
    ``get_speech_timestamps`` finds them."""
    padded = np.pad(audio, (0, WINDOW - audio.shape[0] % WINDOW))
    probs = probabilities(padded).reshape(-1)  # float32: compared in float32, as there
    spans = _triggered(probs, rule, len(audio))
    return _padded(spans, rule, len(audio))


def _triggered(probs: np.ndarray, rule: VadRule, length: int) -> list[list[int]]:
    """The first pass: spans where the probability rises above the threshold until it stays
    below the lower one for the least silence (long spans split at their last pause)."""
    pad = SAMPLE_RATE * rule.speech_pad_ms / 1000
    min_speech = SAMPLE_RATE * rule.min_speech_ms / 1000
    max_speech = SAMPLE_RATE * rule.max_speech_s - WINDOW - 2 * pad
    min_silence = SAMPLE_RATE * rule.min_silence_ms / 1000
    min_silence_at_max = SAMPLE_RATE * 98 / 1000
    low = rule.neg_threshold if rule.neg_threshold is not None else max(rule.threshold - 0.15, 0.01)
    triggered, speeches, current = False, [], []
    temp_end = prev_end = next_start = 0
    for i, prob in enumerate(probs):
        at = WINDOW * i
        if prob >= rule.threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = at
        if prob >= rule.threshold and not triggered:
            triggered, current = True, [at]
            continue
        if triggered and at - current[0] > max_speech:
            if prev_end:
                speeches.append([current[0], prev_end])
                current = []
                if next_start < prev_end:  # silence since, and no speech yet
                    triggered = False
                else:
                    current = [next_start]
                prev_end = next_start = temp_end = 0
            else:
                speeches.append([current[0], at])
                current, triggered = [], False
                prev_end = next_start = temp_end = 0
                continue
        if prob < low and triggered:
            temp_end = temp_end or at
            if at - temp_end > min_silence_at_max:
                prev_end = temp_end
            if at - temp_end < min_silence:
                continue
            if temp_end - current[0] > min_speech:
                speeches.append([current[0], temp_end])
            current, triggered = [], False
            prev_end = next_start = temp_end = 0
    if current and length - current[0] > min_speech:
        speeches.append([current[0], length])
    return speeches


def _padded(speeches: list[list[int]], rule: VadRule, length: int) -> list[tuple[int, int]]:
    """The second pass: each span padded by the rule's pad, or by half the silence between two
    spans where that is shorter than two pads."""
    pad = SAMPLE_RATE * rule.speech_pad_ms / 1000
    for i, speech in enumerate(speeches):
        if i == 0:
            speech[0] = int(max(0, speech[0] - pad))
        if i != len(speeches) - 1:
            following = speeches[i + 1]
            silence = following[0] - speech[1]
            if silence < 2 * pad:
                speech[1] += int(silence // 2)
                following[0] = int(max(0, following[0] - silence // 2))
            else:
                speech[1] = int(min(length, speech[1] + pad))
                following[0] = int(max(0, following[0] - pad))
        else:
            speech[1] = int(min(length, speech[1] + pad))
    return [(int(s), int(e)) for s, e in speeches]
