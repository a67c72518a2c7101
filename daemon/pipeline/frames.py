"""CAM++'s shared frames: its frame features computed once over a window, cut per chunk.

pyannote's chunks overlap (one every segmentation step), so running CAM++ on each chunk runs it
on every second of audio 1 / step times.  Instead the fbank and CAM++'s front end run once over
the window, its TDNN layers once per block of a few chunks (:func:`frame_blocks`), and each
chunk's frames are cut from the block holding it (:func:`cut`).  Pure arithmetic of blocks and
pieces, and the loops that fill them; torch and the model are imported only where they run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from daemon.errors import DiarizationError
from daemon.pipeline.audio import SAMPLE_RATE
from daemon.sysload import release_free_memory

FRAME_BLOCK_CHUNKS = 2
"""Shared frames: chunks per TDNN block (20 s at pyannote's 10-s chunks); blocks overlap by one
chunk so every chunk lies whole in one block, and the fbank is normalised over a chunk's length
around each frame, so a chunk's frames see about the context its own pass would.  The network
costs the same per second at 10 to 120 s: the TDNN blocks cost 2x the audio, against 1 / step.
Longer blocks (60 s, 120 s) cost DER and counts, whether CAM++'s masks saw the whole block
(+0.5 points, a count fewer at step 0.5) or a moving mean of one or two chunks around each
frame (+1.0 to +1.3 points; bench/RESULTS.md)."""


def frame_blocks(
    end: float, chunk: float, chunks: int = FRAME_BLOCK_CHUNKS
) -> list[tuple[float, float]]:
    """Blocks (start, end) of ``chunks`` chunk lengths, one chunk apart, covering [0, end]; the
    last one ends at ``end``."""
    length, stride = chunk * chunks, chunk * (chunks - 1)
    count = max(1, math.ceil((end - length) / stride - 1e-9) + 1)
    return [(k * stride, min(k * stride + length, max(end, chunk))) for k in range(count)]


def block_holding(start: float, chunk: float, blocks: list[tuple[float, float]]) -> int:
    """Index of the first block holding the chunk [start, start + chunk] whole (blocks overlap
    by one chunk, so a chunk lies in two only at their shared ends)."""
    for k, (a, b) in enumerate(blocks):
        if a <= start + 1e-6 and start + chunk <= b + 1e-6:
            return k
    return len(blocks) - 1


FBANK_PIECE_FRAMES = 1500
"""Shared frames: the window's fbank is computed 15 s at a time (its frames are local: pieces
give the same frames), then normalised as one stretch.  A piece's temporaries are about 1.7 KB
per frame: 60-s pieces took 0.1 GB."""
FRONT_MARGIN_FRAMES = 16
"""Shared frames: CAM++'s front end runs on pieces of the window's fbank one block stride long,
each with 16 frames more on either side than it keeps (its convolutions see 10 frames on
either side of each one)."""


def stream_fbank(model: Any, crop: Callable[[float, float], Any], frames: int, context: int) -> Any:
    """The first ``frames`` fbank frames of the audio that ``crop(start, end)`` returns as a
    (1, 1, samples) tensor, computed :data:`FBANK_PIECE_FRAMES` at a time into one tensor, then
    normalised over ``context`` frames around each one in place (the arithmetic of
    :func:`~daemon.pipeline.campplus_model.normalise`, without its copies)."""
    import torch

    from daemon.pipeline.campplus_model import FBANK_HOP, FBANK_WINDOW, normalise_in_place

    rate = SAMPLE_RATE
    feats: Any = None
    for first in range(0, frames, FBANK_PIECE_FRAMES):
        count = min(FBANK_PIECE_FRAMES, frames - first)
        # a hop more than the frames need, so that a sample lost to rounding costs none
        samples = (count - 1) * FBANK_HOP + FBANK_WINDOW + FBANK_HOP
        start = first * FBANK_HOP
        with torch.inference_mode():
            raw = model.raw_fbank(crop(start / rate, (start + samples) / rate))
        if raw.shape[1] < count:  # every later frame would shift
            raise DiarizationError(f"fbank piece at frame {first}: {raw.shape[1]} of {count}")
        if feats is None:  # one array filled piece by piece (no list of pieces joined)
            feats = torch.empty((1, frames, raw.shape[2]), dtype=raw.dtype)
        feats[0, first : first + count] = raw[0, :count]
    with torch.inference_mode():
        normalise_in_place(feats, context)
    return feats[0]


def front_pieces(
    frames: int, piece: int, margin: int = FRONT_MARGIN_FRAMES
) -> list[tuple[int, int, int, int]]:
    """Pieces (lo, hi, keep_from, keep_to) of ``frames`` frames: run [lo, hi), keep
    [keep_from, keep_to); the kept parts tile [0, frames) (pure)."""
    return [
        (max(0, k - margin), min(frames, k + piece + margin), k, min(frames, k + piece))
        for k in range(0, frames, piece)
    ]


@dataclass(frozen=True)
class Lanes:
    """Work run side by side on a thread pool, as many at a time as ``count()`` says (read
    again for every group: the grant grows when the ASR finishes)."""

    pool: Executor
    count: Callable[[], int]

    def run(
        self,
        work: Callable[[int], np.ndarray],
        items: list[int],
        done: Callable[[int], None] = lambda _n: None,
    ) -> list[np.ndarray]:
        """``work(item)`` for each item, in order, a group of lanes at a time; ``done(n)``
        after each group, n items done."""
        out: list[np.ndarray] = []
        while len(out) < len(items):
            group = items[len(out) : len(out) + max(1, self.count())]
            out.extend(self.pool.map(work, group) if len(group) > 1 else [work(group[0])])
            done(len(out))
        return out


class BlockFrames:
    """CAM++'s frames (512, frames / 2) of each block of ``plan`` (:func:`frame_blocks`) of the
    audio that ``crop(start, end)`` gives, computed in order as they are asked for and dropped
    once no chunk to come needs them (:meth:`drop_before`): a 10-min window's blocks held at
    once were 121 MB at the window's peak.

    The fbank of the whole stretch is computed once, normalised over ``context`` frames around
    each frame (:func:`stream_fbank`); the front end a block stride at a time with a margin
    (:func:`front_pieces`), each piece dropped once no block to come needs it; the TDNN layers
    per block, the blocks of a group side by side in ``lanes``.  Each block's frames are copied
    into a buffer of its own, reused once the block is dropped: ONNX Runtime's output buffers
    are freed at once, not kept between the temporary buffers of later blocks (which glibc
    could then not give back: 1.9 GB peak against 1.0 GB on a 10-min window).
    ``progress(blocks done, blocks)``."""

    def __init__(
        self,
        model: Any,
        crop: Callable[[float, float], Any],
        plan: list[tuple[float, float]],
        context: int,
        lanes: Lanes,
        progress: Callable[[int, int], None] = lambda _d, _n: None,
    ) -> None:
        from daemon.pipeline.campplus_model import FBANK_HOP, fbank_frames

        self.model, self.plan, self.lanes, self.progress = model, plan, lanes, progress
        frames = fbank_frames(round(plan[-1][1] * SAMPLE_RATE))
        self.fbank = stream_fbank(model, crop, frames, context)
        release_free_memory()  # the fbank's temporaries (0.05 GB per 10 minutes)
        self.total = self.fbank.shape[0]
        self.tile = round(plan[1][0] * SAMPLE_RATE) // FBANK_HOP if len(plan) > 1 else self.total
        self.pieces = front_pieces(self.total, self.tile)
        self.tiles: dict[int, np.ndarray] = {}
        self.blocks: dict[int, np.ndarray] = {}
        self._buffers: dict[int, np.ndarray] = {}
        """Block -> the buffer its frames are a view of."""
        self.done = 0
        """Blocks computed so far (the next one to compute)."""
        self._width = model.num_frames(round(plan[0][1] * SAMPLE_RATE))
        self._free: list[np.ndarray] = []

    def block(self, k: int) -> np.ndarray:
        """Block k's frames, computing the blocks up to it (a group of lanes at a time)."""
        while self.done <= k:
            self._next_group()
        if k not in self.blocks:
            raise DiarizationError(f"block {k} was dropped before a chunk needed it")
        return self.blocks[k]

    def drop_before(self, k: int) -> None:
        """Let the blocks before k go (no chunk to come is cut from them)."""
        for j in [j for j in self.blocks if j < k]:
            del self.blocks[j]
            self._free.append(self._buffers.pop(j))

    def _next_group(self) -> None:
        group = list(range(self.done, min(len(self.plan), self.done + max(1, self.lanes.count()))))
        wanted = sorted({t for j in group for t in self.tiles_of(j)} - self.tiles.keys())
        self.tiles.update(zip(wanted, self.lanes.run(self.front_tile, wanted), strict=True))
        self._buffers.update((j, self._buffer()) for j in group)
        frames = self.lanes.run(lambda j: self.block_frames(j, self._buffers[j]), group)
        self.blocks.update(zip(group, frames, strict=True))
        self.done = group[-1] + 1
        if self.done < len(self.plan):
            for t in [t for t in self.tiles if t < self.tiles_of(self.done)[0]]:
                del self.tiles[t]
        self.progress(self.done, len(self.plan))

    def _buffer(self) -> np.ndarray:
        if self._free:
            return self._free.pop()
        return np.empty((self.model.dimension_frames, self._width), np.float32)

    def front_tile(self, t: int) -> np.ndarray:
        """The front end's output (320, frames) of piece ``t``, its margins dropped."""
        import torch

        lo, hi, keep_from, keep_to = self.pieces[t]
        with torch.inference_mode():
            out: np.ndarray = self.model.front_network(self.fbank[None, lo:hi])[0].numpy()
        return np.ascontiguousarray(out[:, keep_from - lo : keep_to - lo])

    def span(self, k: int) -> tuple[int, int]:
        """Block k's fbank frames [first, end)."""
        from daemon.pipeline.campplus_model import FBANK_HOP, fbank_frames

        a, b = self.plan[k]
        first = round(a * SAMPLE_RATE) // FBANK_HOP
        return first, min(self.total, first + fbank_frames(round((b - a) * SAMPLE_RATE)))

    def tiles_of(self, k: int) -> range:
        """The front-end pieces that block k's frames lie in."""
        first, end = self.span(k)
        return range(first // self.tile, (end - 1) // self.tile + 1)

    def block_frames(self, k: int, into: np.ndarray) -> np.ndarray:
        """Block k's frames (512, frames / 2): the TDNN layers on its front-end pieces, copied
        into ``into`` (a view of it is returned)."""
        import torch

        first, end = self.span(k)
        own = self.tiles_of(k)
        x = np.concatenate([self.tiles[t] for t in own], axis=1)[
            :, first - own[0] * self.tile : end - own[0] * self.tile
        ]
        with torch.inference_mode():
            frames = self.model.back_network(torch.from_numpy(x[None]))[0].numpy()
        width = frames.shape[1]
        if width > into.shape[1]:
            raise DiarizationError(f"block {k}: {width} frames, wider than the first block")
        into[:, :width] = frames
        return into[:, :width]


FRAME_RATE = 50.0
"""CAM++'s frame features per second: the fbank's 10-ms hop, halved by its first TDNN layer."""


def cut_from(block: np.ndarray, a: float, start: float, width: int) -> np.ndarray:
    """The ``width`` frames (channels, width) of the chunk at ``start`` from the frames of the
    block starting at ``a`` that holds it."""
    offset = round((start - a) * FRAME_RATE)
    out = block[:, max(0, min(offset, block.shape[1] - width)) :][:, :width]
    return np.pad(out, ((0, 0), (0, width - out.shape[1])), mode="edge")
