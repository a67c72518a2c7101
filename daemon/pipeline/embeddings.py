"""pyannote's SpeakerDiarization with an embedding step that runs CAM++ once per chunk.

pyannote (and with it torchaudio) is imported through :mod:`daemon.pipeline.pyannote_env`, first
of all, so this module may be the first of the diarization code a process imports; the daemon's
main process never imports it (:class:`daemon.pipeline.diarize.Diarizer` does, when it loads).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from daemon.pipeline import pyannote_env

pyannote_env.load()  # pyannote.audio imports torchaudio: that import is made safe first

import torch  # noqa: E402
from einops import rearrange  # noqa: E402
from pyannote.audio.pipelines import SpeakerDiarization  # noqa: E402
from pyannote.core import Segment  # noqa: E402

from daemon.pipeline.campplus_model import FBANK_HOP  # noqa: E402
from daemon.pipeline.frames import (  # noqa: E402
    FRAME_BLOCK_CHUNKS,
    BlockFrames,
    Lanes,
    block_holding,
    cut_from,
    frame_blocks,
)

Progress = Callable[[int, int], None]
"""Told (done, total) as the embedding step advances."""


class ChunkedEmbeddingDiarization(SpeakerDiarization):
    """SpeakerDiarization whose embedding step runs CAM++ once per chunk, not once per speaker.

    pyannote computes one embedding per (chunk, local speaker) pair by running the embedding
    network on the same chunk once for each of its local speakers, the mask entering only at
    the pooling layer.  This subclass runs the frame network once per chunk and pools it with
    every speaker's mask: the same embeddings for a third of the compute.

    The batches run in ``embedding_lanes()`` lanes side by side, one thread each (read again
    between rounds, since the grant grows when the ASR finishes): CAM++ gains 1.78x from two
    lanes against 1.37x from two intra-op threads (bench/RESULTS.md).
    """

    embedding_lanes: Callable[[], int] = staticmethod(lambda: 1)
    """How many batches to run side by side next (each lane on one thread)."""
    shared_frames = False
    """Frames computed once per stretch of audio, not once per (overlapping) chunk."""
    frame_block_chunks = FRAME_BLOCK_CHUNKS

    def get_embeddings(
        self,
        file: Any,
        binary_segmentations: Any,
        exclude_overlap: bool = False,
        hook: Any = None,
    ) -> Any:
        duration = binary_segmentations.sliding_window.duration
        masks = self._masks(binary_segmentations, exclude_overlap)
        chunks = [chunk for chunk, _ in binary_segmentations]

        def progress(done: int, total: int) -> None:
            if hook is not None:
                hook("embeddings", None, total=total, completed=min(done, total))

        with ThreadPoolExecutor(thread_name_prefix="embed-lane") as pool:
            lanes = Lanes(pool, self.embedding_lanes)
            if not self.shared_frames:
                return self._embed_each_chunk(file, chunks, masks, lanes, progress)
            return self._embed_shared_frames(file, chunks, duration, masks, lanes, progress)

    def _masks(self, binary_segmentations: Any, exclude_overlap: bool) -> torch.Tensor:
        """Each chunk's local speakers' masks (chunks, speakers, frames); with
        ``exclude_overlap``, a speaker's frames spoken alone where there are enough of them."""
        duration = binary_segmentations.sliding_window.duration
        data = np.nan_to_num(binary_segmentations.data, nan=0.0).astype(np.float32)
        _, num_frames, _ = data.shape
        masks = data
        if exclude_overlap:
            min_samples = self._embedding.min_num_samples
            min_frames = math.ceil(
                num_frames * min_samples / (duration * self._embedding.sample_rate)
            )
            clean = data * (data.sum(axis=2, keepdims=True) < 2)
            use_clean = clean.sum(axis=1, keepdims=True) > min_frames
            masks = np.where(use_clean, clean, data)
        return torch.from_numpy(rearrange(masks, "c f s -> c s f"))

    def _waves(self, file: Any, segments: list[Any]) -> torch.Tensor:
        """The audio of ``segments`` (each padded to its length), one row each."""
        return torch.vstack([self._audio.crop(file, seg, mode="pad")[0][None] for seg in segments])

    def _embed_each_chunk(
        self,
        file: Any,
        chunks: list[Any],
        masks: torch.Tensor,
        lanes: Lanes,
        progress: Progress,
    ) -> np.ndarray:
        """The whole network once per chunk, a batch of chunks per lane."""
        model = self._embedding.model_
        batch = max(1, self.embedding_batch_size)
        num_chunks = len(chunks)

        def embed(start: int) -> np.ndarray:
            waves = self._waves(file, chunks[start : start + batch])
            with torch.inference_mode():
                m = masks[start : start + batch]
                out: np.ndarray = model.embed_chunks(waves, m).numpy()
            return out

        starts = list(range(0, num_chunks, batch))
        done = lambda n: progress(n * batch, num_chunks)  # noqa: E731
        return np.concatenate(lanes.run(embed, starts, done))

    def _embed_shared_frames(
        self,
        file: Any,
        chunks: list[Any],
        duration: float,
        masks: torch.Tensor,
        lanes: Lanes,
        progress: Progress,
    ) -> np.ndarray:
        """Shared frames: the fbank and CAM++'s front end once over the window (in pieces), its
        TDNN layers once per block of several chunks (blocks overlapping by one chunk), each
        chunk's frames cut from the first block holding it (:mod:`daemon.pipeline.frames`).
        The blocks are computed as the chunks come to them and dropped once the chunks behind
        them are pooled: a window holds a few blocks at a time, not all of them."""
        model = self._embedding.model_
        batch = max(1, self.embedding_batch_size)
        plan = frame_blocks(chunks[-1].end, duration, self.frame_block_chunks)
        chunk_samples = round(duration * self._embedding.sample_rate)
        blocks = BlockFrames(
            model,
            lambda a, b: self._waves(file, [Segment(a, b)]),
            plan,
            chunk_samples // FBANK_HOP,
            lanes,
            progress,
        )
        width = model.num_frames(chunk_samples)
        holding = [block_holding(c.start, duration, plan) for c in chunks]

        def pooled(start: int) -> np.ndarray:
            # one batch of chunks' frames at a time: all of them at once would hold
            # 1 MB per chunk (600 MB for a 10-min window at step 0.1)
            frames = np.stack(
                [
                    cut_from(blocks.block(k), plan[k][0], c.start, width)
                    for c, k in zip(chunks[start : start + batch], holding[start:], strict=False)
                ]
            )
            with torch.inference_mode():
                out: np.ndarray = model.embed_frames(
                    torch.from_numpy(frames), masks[start : start + batch]
                ).numpy()
            if start + batch < len(chunks):
                blocks.drop_before(holding[start + batch])
            return out

        return np.concatenate([pooled(i) for i in range(0, len(chunks), batch)])
