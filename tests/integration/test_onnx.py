"""The diarization networks on ONNX Runtime: exported once from the packaged checkpoints into
the model cache, verified, rebuilt when tampered with, and giving torch's results."""

from __future__ import annotations

import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.metrics import der
from daemon.pipeline import onnx
from daemon.pipeline.diarize import EMBEDDING, SEGMENTATION, DiarizeParams, Diarizer
from tests.conftest import need_eval

pytestmark = [pytest.mark.model, pytest.mark.eval]


def speech(name: str = "sample.wav") -> np.ndarray:
    with wave.open(str(need_eval("diarization", name))) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return pcm.astype(np.float32) / 32768


@pytest.mark.slow  # among the longest: CI runs it with -m slow
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
    # embeddings two lanes of one thread each (on 90 s: eight 20-s blocks), and the same result
    audio = np.tile(audio, 3)
    by_onnx = on_onnx(audio)
    on_onnx.threads = 2
    lanes: set[str] = set()

    def seen(name: str, *_a: object, **_k: object) -> None:
        if name == "embeddings":
            lanes.update(t.name for t in threading.enumerate() if t.name.startswith("embed-lane"))

    model = on_onnx._pipeline._embedding.model_
    running, most = [0], [0]
    lock = threading.Lock()

    def counted(network: Any) -> Any:
        def run(x: Any) -> Any:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                return network(x)
            finally:
                with lock:
                    running[0] -= 1

        return run

    model.front_network = counted(model.front_network)
    model.back_network = counted(model.back_network)
    by_lanes = on_onnx(audio, hook=seen)
    assert len(lanes) >= 2  # embedding lanes ran (the pool may keep a spare thread)
    assert most[0] == 2  # two lanes side by side, never more than the grant
    assert on_onnx._onnx is not None
    assert on_onnx._onnx.segmentation.thread_counts == [1, 2]
    assert on_onnx._onnx.front.thread_counts == on_onnx._onnx.back.thread_counts == [1]
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


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_shared_frames_give_each_chunk_its_own_embedding(tmp_path: Path) -> None:
    """Frames cut from 20-s blocks pool into the embeddings that the chunk's own pass gives,
    closely enough to cluster alike (bench/frames.py measures the DER); a cut one chunk step
    off would pool another stretch of speech and fail this."""
    names = ("sample.wav", "dev00.wav", "dev01.wav", "trn00.wav")
    audio = np.concatenate([speech(n) for n in names])  # 120 s: eleven blocks
    diarizer = Diarizer(DiarizeParams(segmentation_step=0.3), onnx_cache=tmp_path / "models")
    pipe = diarizer._pipeline
    original = pipe.get_embeddings
    seen: dict[str, np.ndarray] = {}

    def both(file: Any, binary: Any, exclude_overlap: bool = False, hook: Any = None) -> Any:
        seen["shared"] = original(file, binary, exclude_overlap=exclude_overlap, hook=hook)
        pipe.shared_frames = False
        seen["exact"] = original(file, binary, exclude_overlap=exclude_overlap)
        pipe.shared_frames = True
        seen["active"] = np.nan_to_num(binary.data).sum(axis=1) > 100  # frames: about 1.7 s
        return seen["shared"]

    object.__setattr__(pipe, "get_embeddings", both)
    found = diarizer(audio)
    assert len({t.speaker for t in found.turns}) >= 2
    shared, exact = seen["shared"][seen["active"]], seen["exact"][seen["active"]]
    assert len(shared) > 30

    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)

    same = cosine(shared, exact)  # measured: median 0.975, 5th percentile 0.87
    assert float(np.median(same)) > 0.95 and float(np.percentile(same, 5)) > 0.75
    # the neighbouring (chunk, speaker) pair's embedding is much further (median 0.71)
    assert float(np.median(cosine(shared[1:], exact[:-1]))) < float(np.median(same)) - 0.1


def test_the_front_end_in_pieces_gives_the_whole_stretch(tmp_path: Path) -> None:
    """Shared frames compute the fbank 60 s at a time and CAM++'s front end one block stride
    (10 s) at a time with a margin: the same frames as one pass over the whole stretch, at the
    pieces' seams too."""
    import torch

    from daemon.pipeline.campplus_model import fbank_frames, normalise
    from daemon.pipeline.frames import (
        BlockFrames,
        Lanes,
        frame_blocks,
        front_pieces,
        stream_fbank,
    )

    audio = np.concatenate([speech(n) for n in ("sample.wav", "dev00.wav", "dev01.wav")])
    diarizer = Diarizer(DiarizeParams(), onnx_cache=tmp_path / "models")
    model = diarizer._pipeline._embedding.model_
    wave_ = torch.from_numpy(audio)[None, None]
    frames = fbank_frames(audio.size)
    assert frames > 6000  # more than one fbank piece, more than two front pieces

    def crop(a: float, b: float) -> torch.Tensor:
        piece = wave_[..., round(a * 16000) : round(b * 16000)]
        return torch.nn.functional.pad(piece, (0, round((b - a) * 16000) - piece.shape[-1]))

    with torch.inference_mode():
        whole = normalise(model.raw_fbank(wave_), 1000)[0]
        streamed = stream_fbank(model, crop, frames, 1000)
        assert streamed.shape == whole.shape
        assert float((streamed - whole).abs().max()) < 1e-4
        front_whole = model.front_network(whole[None])[0].numpy()
        pieces = np.concatenate(
            [
                model.front_network(whole[None, lo:hi])[0].numpy()[:, a - lo : b - lo]
                for lo, hi, a, b in front_pieces(frames, 1000)
            ],
            axis=1,
        )
    assert pieces.shape == front_whole.shape
    assert float(np.abs(pieces - front_whole).max()) < 1e-3 * float(np.abs(front_whole).max())

    # the production pass: each 20-s block's TDNN frames from those pieces equal the TDNN
    # layers run on the block's part of the whole stretch's front end (tiles dropped as it
    # goes, and blocks once dropped: their buffers are reused for later blocks)
    plan = frame_blocks(audio.size / 16000, 10.0)
    with ThreadPoolExecutor() as pool:
        stream = BlockFrames(model, crop, plan, 1000, Lanes(pool, lambda: 2))
        blocks = []
        for k in range(len(plan)):
            blocks.append(stream.block(k).copy())
            stream.drop_before(k)
    assert len(blocks) == len(plan) > 5
    assert len(stream.blocks) <= 2  # the last group's
    with torch.inference_mode():
        for (a, b), got in zip(plan, blocks, strict=True):
            first = round(a * 100)
            part = front_whole[:, first : first + fbank_frames(round((b - a) * 16000))]
            want = model.back_network(torch.from_numpy(np.ascontiguousarray(part[None])))[0]
            assert got.shape == tuple(want.shape)
            assert float(np.abs(got - want.numpy()).max()) < 1e-3 * float(np.abs(got).max())
