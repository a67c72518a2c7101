"""The degenerate-transcript safeguard fires on none of the evaluation recordings: the real
Whisper models (base as balanced runs it, and tiny.en as fast runs English) over every clip of
../shared/eval (asr_en, asr_ru and the diarization recordings), each window's text checked as
the ASR step checks it.  Run with ``-s`` to see the highest compression ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon import modelstore
from daemon.pipeline.asr import AsrModel, AsrOptions
from daemon.pipeline.audio import decode_blocks
from daemon.pipeline.degenerate import compression_ratio, degenerate_windows
from tests.conftest import need_eval

pytestmark = [pytest.mark.model, pytest.mark.eval, pytest.mark.slow]  # a measurement: ~1 min

AUDIO = (".wav", ".flac", ".mp3")


def clips(*folders: str) -> list[Path]:
    found = [p for f in folders for p in sorted(need_eval(f).iterdir()) if p.suffix in AUDIO]
    assert found
    return found


@pytest.mark.parametrize(
    ("model", "folders"),
    [
        ("base", ("asr_en", "asr_ru", "diarization")),
        ("tiny.en", ("asr_en", "diarization")),
    ],
)
def test_no_evaluation_clip_is_degenerate(
    model: str, folders: tuple[str, ...], model_cache: Path
) -> None:
    asr = AsrModel(modelstore.resolve(model, model_cache), "int8", 2)
    options = AsrOptions(beam_size=2 if model == "base" else 1)
    flagged, ratios = [], []
    paths = clips(*folders)
    for path in paths:
        audio = np.concatenate(list(decode_blocks(path)))
        found, _ = asr.transcribe(audio, None, options)
        texts = [s.text for s in found]
        ratios += [(compression_ratio(t), path.name) for t in texts]
        problem = degenerate_windows(texts)
        if problem is not None:
            flagged.append((path.name, problem))
    top = ", ".join(f"{r:.2f} ({name})" for r, name in sorted(ratios, reverse=True)[:3])
    print(
        f"\n{model}: {len(paths)} clips, {len(ratios)} windows, {len(flagged)} flagged; "
        f"highest compression ratios {top}"
    )
    assert flagged == []
    assert len(paths) >= 30 if "asr_ru" in folders else len(paths) >= 20
