"""The diarization networks on ONNX Runtime: exported once from the packaged checkpoints into
the model cache, verified, rebuilt when tampered with, and giving torch's results."""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from bench.metrics import der
from daemon.pipeline import onnx
from daemon.pipeline.diarize import EMBEDDING, SEGMENTATION, DiarizeParams, Diarizer
from tests.conftest import need_eval

pytestmark = [pytest.mark.model, pytest.mark.eval]


def speech() -> np.ndarray:
    with wave.open(str(need_eval("diarization", "sample.wav"))) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return pcm.astype(np.float32) / 32768


def test_onnx_networks_export_once_and_match_torch(tmp_path: Path) -> None:
    import torch

    audio = speech()
    cache = tmp_path / "models"
    on_onnx = Diarizer(DiarizeParams(), threads=1, onnx_cache=cache)
    assert on_onnx.runtime == "onnxruntime"
    folder = onnx.export_folder(cache, SEGMENTATION[1], EMBEDDING[1])
    assert onnx.verified(folder)
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    on_torch = Diarizer(DiarizeParams(), threads=1)
    assert on_torch.runtime == "torch"

    # the networks: same outputs on real speech, 10-s chunks as the pipeline feeds them
    chunks = torch.from_numpy(np.stack([audio[:160000], audio[80000:240000]]))[:, None]
    with torch.inference_mode():
        seg_torch = on_torch._pipeline._segmentation.model(chunks)
        seg_onnx = on_onnx._pipeline._segmentation.model(chunks)
    assert seg_onnx.shape == seg_torch.shape
    assert float((seg_onnx - seg_torch).abs().max()) < 1e-3
    masks = torch.ones(2, 3, 589)
    masks[:, 1, 300:] = 0
    with torch.inference_mode():
        emb_torch = on_torch._pipeline._embedding.model_.embed_chunks(chunks, masks)
        emb_onnx = on_onnx._pipeline._embedding.model_.embed_chunks(chunks, masks)
    cosine = torch.nn.functional.cosine_similarity(emb_torch, emb_onnx, dim=-1)
    assert float(cosine.min()) > 0.9999

    # the whole pipeline: the same speakers, the same turns within rounding
    by_torch = on_torch(audio)
    by_onnx = on_onnx(audio, hook=None)
    speakers = {t.speaker for t in by_torch.turns}
    assert len(speakers) == 2
    assert {t.speaker for t in by_onnx.turns} == speakers
    turns = [(t.start, t.end, t.speaker) for t in by_torch.turns]
    assert der(turns, [(t.start, t.end, t.speaker) for t in by_onnx.turns]) < 0.01

    # a grant of two threads: segmentation gets a session of two intra-op threads, the
    # embeddings two lanes of one thread each, and the result is the same
    on_onnx.threads = 2
    lanes: set[str] = set()

    def seen(name: str, *_a: object, **_k: object) -> None:
        if name == "embeddings":
            lanes.update(t.name for t in threading.enumerate() if t.name.startswith("embed-lane"))

    by_lanes = on_onnx(audio, hook=seen)
    assert len(lanes) == 2
    assert on_onnx._onnx is not None
    assert on_onnx._onnx.segmentation.thread_counts == [1, 2]
    assert on_onnx._onnx.embedding.thread_counts == [1]
    assert [(t.start, t.end, t.speaker) for t in by_lanes.turns] == [
        (t.start, t.end, t.speaker) for t in by_onnx.turns
    ]

    # loaded again: nothing is exported again
    Diarizer(DiarizeParams(), onnx_cache=cache)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written

    # a damaged export does not verify and is written again at the next load
    (folder / onnx.SEGMENTATION_FILE).write_bytes(b"not a model")
    assert not onnx.verified(folder)
    again = Diarizer(DiarizeParams(), onnx_cache=cache)
    assert onnx.verified(folder)
    assert {t.speaker for t in again(audio).turns} == speakers
