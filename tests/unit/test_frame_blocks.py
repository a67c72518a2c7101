"""Shared CAM++ frames: the blocks the embedding network runs on, and each chunk's frames cut
from the block holding it (pure; the models' side is in tests/integration/test_onnx.py)."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.pipeline.frames import block_holding, cut_from, frame_blocks, front_pieces


def cut(
    frames: list[np.ndarray],
    blocks: list[tuple[float, float]],
    start: float,
    chunk: float,
    width: int,
) -> np.ndarray:
    """A chunk's frames as the embeddings take them: from the first block holding it."""
    k = block_holding(start, chunk, blocks)
    return cut_from(frames[k], blocks[k][0], start, width)


@pytest.mark.parametrize(
    ("end", "blocks"),
    [
        (5.0, [(0.0, 10.0)]),  # shorter than a chunk: one chunk-long block (padded)
        (15.0, [(0.0, 15.0)]),
        (20.0, [(0.0, 20.0)]),
        (21.0, [(0.0, 20.0), (10.0, 21.0)]),
        (40.0, [(0.0, 20.0), (10.0, 30.0), (20.0, 40.0)]),
    ],
)
def test_blocks_cover_the_audio_one_chunk_apart(
    end: float, blocks: list[tuple[float, float]]
) -> None:
    assert frame_blocks(end, 10.0) == blocks


def test_longer_blocks() -> None:
    assert frame_blocks(61.0, 10.0, chunks=6) == [(0.0, 60.0), (50.0, 61.0)]
    assert frame_blocks(300.0, 10.0, chunks=6)[-1] == (250.0, 300.0)


@pytest.mark.parametrize("step", [0.5, 0.3, 0.1, 0.05])
def test_every_chunk_lies_whole_in_the_block_it_is_cut_from(step: float) -> None:
    chunk, end = 10.0, 1234.5
    blocks = frame_blocks(end, chunk)
    starts = np.arange(0.0, end - chunk + 1e-9, chunk * step)
    for start in starts:
        a, b = blocks[block_holding(float(start), chunk, blocks)]
        assert a <= start + 1e-6 and start + chunk <= b + 1e-6
    # the network sees about 2x the audio, whatever the step (at step 0.1 each chunk's own
    # pass sees it 10 times)
    assert sum(b - a for a, b in blocks) / end == pytest.approx(2.0, abs=0.05)


def test_a_chunks_frames_are_cut_at_its_offset_in_its_block() -> None:
    # frame i of a block carries its time (seconds * 50 frames / s) in every channel
    blocks = frame_blocks(130.0, 10.0)
    frames = [np.tile(np.arange(round((b - a) * 50)) / 50 + a, (3, 1)) for a, b in blocks]
    for start in (0.0, 5.0, 45.0, 50.0, 55.0, 97.0, 120.0):
        out = cut(frames, blocks, start, 10.0, 500)
        assert out.shape == (3, 500)
        assert out[0, 0] == pytest.approx(start, abs=0.02)
        assert out[0, -1] == pytest.approx(start + 9.98, abs=0.02)
    # a block shorter than a chunk (a short file): its frames, the last one repeated
    short = [np.tile(np.arange(200, dtype=float), (2, 1))]
    out = cut(short, [(0.0, 10.0)], 0.0, 10.0, 499)
    assert out.shape == (2, 499) and out[0, 199] == out[0, -1] == 199


@pytest.mark.parametrize("frames", [1, 500, 2999, 3000, 3001, 60000, 61234])
def test_front_pieces_keep_every_frame_once_with_margins(frames: int) -> None:
    pieces = front_pieces(frames, 3000, margin=16)
    kept = [k for _lo, _hi, a, b in pieces for k in range(a, b)]
    assert kept == list(range(frames))
    for lo, hi, a, b in pieces:
        assert 0 <= lo <= a < b <= hi <= frames
        # the margin wherever there is audio beyond the kept part
        assert a - lo == min(16, a) and hi - b == min(16, frames - b)


@pytest.mark.parametrize("chunks", [2, 3, 6, 12])
def test_cuts_land_on_the_chunks_time_in_blocks_of_real_width(chunks: int) -> None:
    """CAM++ gives a block of n samples (1 + (n - 400) // 160 + 1) // 2 frames at 50 per second
    (a 20-s block: 999, not 1000): a cut is placed by time, not by the block's width, which
    put every chunk past 10 s into a 30-s block one frame early."""
    chunk, end = 10.0, 400.0
    blocks = frame_blocks(end, chunk, chunks)

    def width(a: float, b: float) -> int:
        samples = round((b - a) * 16000)
        return (1 + (samples - 400) // 160 + 1) // 2

    frames = [np.tile(a + np.arange(width(a, b)) / 50, (2, 1)) for a, b in blocks]
    for start in np.arange(0.0, end - chunk + 1e-9, 0.1):
        out = cut(frames, blocks, float(start), chunk, 499)
        assert out[0, 0] == pytest.approx(start, abs=1e-6)
