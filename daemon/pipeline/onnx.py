"""The diarization networks on ONNX Runtime, exported once from the packaged checkpoints.

pyannote's segmentation-3.0 and CAM++'s frame network (fbank in, frame features out; in two
graphs, its convolutional front end and its TDNN layers, which shared frames run apart) are
exported with torch's TorchScript exporter on first use into a folder of the model cache named
after both source checkpoints' sha256 and :data:`EXPORT_VERSION`: written in a temporary folder,
each file's sha256 recorded in a marker, then renamed into place, so a half-written export is
never used and a changed checkpoint gets a folder of its own.  At load each file is checked
against its recorded sha256 (a mismatch exports again), and the folders of earlier export
versions are removed.

Only the networks move: pyannote's pipeline keeps the sliding windows, powerset decoding,
aggregation, the masked statistics pooling and the clustering.  Sessions run on the CPU
execution provider with as many intra-op threads as the worker's grant, one session per thread
count (ONNX Runtime fixes its pool when a session is made), and idle threads that sleep instead
of spinning, so that they never take a core from CTranslate2 running beside them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from daemon.errors import DiarizationError
from daemon.modelstore import file_sha256

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)

EXPORT_VERSION = 2
"""Bump when the export below changes what it writes: the cache folder's name changes with it.
2: CAM++ in two graphs, its front end and its TDNN layers (1: one graph)."""
OPSET = 17
SEGMENTATION_FILE = "segmentation.onnx"
FRONT_FILE = "campplus-front.onnx"
BACK_FILE = "campplus-back.onnx"
FILES = (SEGMENTATION_FILE, FRONT_FILE, BACK_FILE)
MARKER = ".verified"
ABANDONED_SECONDS = 24 * 3600
"""A temporary export folder untouched this long belongs to an export that died: removed."""
UNUSED_SECONDS = 7 * 24 * 3600
"""An earlier export version's folder is removed once it was written this long ago."""
_EXPORT_NAME = re.compile(r"(\.?)diarization-onnx-v([0-9]+)-seg[0-9a-f]+-emb[0-9a-f]+(\..+)?")


def export_folder(cache_dir: Path, segmentation_sha: str, embedding_sha: str) -> Path:
    """Where the exported networks of these checkpoints live (pure)."""
    return cache_dir / (
        f"diarization-onnx-v{EXPORT_VERSION}-seg{segmentation_sha[:12]}-emb{embedding_sha[:12]}"
    )


def stale_exports(
    entries: Iterable[tuple[str, float]], now: float, version: int = EXPORT_VERSION
) -> list[str]:
    """Of a model cache folder's entries (name, modification time), those to remove (pure):

    - the export folders of earlier export versions, written at least :data:`UNUSED_SECONDS`
      ago.  ONNX Runtime reads a network's file when it makes a session, and a worker makes
      one per thread count when it first needs it: a worker of an earlier version still
      running would fail a job (which is retried) if it needed a new session after that, and
      export again when restarted (a fresh folder, kept another week).  A week keeps an
      upgrade's overlap of old and new workers clear of that;
    - temporary folders of exports (``.<folder>.<random>``) untouched for
      :data:`ABANDONED_SECONDS`: their export died (a live one writes into its folder).

    Never the current version's folders (any checkpoints) nor a later version's."""
    stale = []
    for name, mtime in entries:
        match = _EXPORT_NAME.fullmatch(name)
        if match is None:
            continue
        dot, number, suffix = match.groups()
        age = now - mtime
        if dot and suffix is not None:  # a temporary folder
            if age >= ABANDONED_SECONDS:
                stale.append(name)
        elif not dot and suffix is None and int(number) < version and age >= UNUSED_SECONDS:
            stale.append(name)
    return stale


def prune(cache_dir: Path, now: float | None = None) -> None:
    """Remove from the model cache folder what :func:`stale_exports` says is stale."""
    entries = []
    try:
        for entry in cache_dir.iterdir():
            entries.append((entry.name, entry.stat().st_mtime))
    except OSError:
        return
    for name in stale_exports(entries, time.time() if now is None else now):
        path = cache_dir / name
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            log.warning("could not remove an old diarization export", extra={"path": str(path)})
        else:
            log.info("removed an old diarization export", extra={"path": str(path)})


def verified(folder: Path) -> bool:
    """Every file present and matching the sha256 recorded when they were written."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return all(file_sha256(folder / name) == marker["files"][name] for name in FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_exported(folder: Path, segmentation: Any, campplus: Any) -> Path:
    """The verified export folder, exporting ``segmentation`` (pyannote's PyanNet) and
    ``campplus`` (:class:`~daemon.pipeline.campplus.CAMPPlus`) into it first if needed; then
    the export folders of earlier versions leave the cache (:func:`prune`)."""
    folder = _ensure_exported(folder, segmentation, campplus)
    prune(folder.parent)
    return folder


def _ensure_exported(folder: Path, segmentation: Any, campplus: Any) -> Path:
    if verified(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    started = time.perf_counter()
    try:
        _export(segmentation, campplus, tmp)
        files = {name: file_sha256(tmp / name) for name in FILES}
        (tmp / MARKER).write_text(
            json.dumps({"files": files, "export_version": EXPORT_VERSION}), encoding="utf-8"
        )
        if verified(folder):
            return folder  # another worker finished first: its files are the same
        shutil.rmtree(folder, ignore_errors=True)  # a damaged export
        try:
            os.replace(tmp, folder)
        except OSError:  # another worker's rename came between: use it if it verifies
            if not verified(folder):
                raise
            return folder
        log.info(
            "exported the diarization networks to ONNX",
            extra={"path": str(folder), "seconds": round(time.perf_counter() - started, 2)},
        )
    except Exception as exc:
        raise DiarizationError(f"could not export the diarization networks to ONNX: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _export(segmentation: Any, campplus: Any, out: Path) -> None:
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            segmentation,
            (torch.zeros(2, 1, 160000),),
            str(out / SEGMENTATION_FILE),
            dynamo=False,
            input_names=["waveforms"],
            output_names=["scores"],
            dynamic_axes={"waveforms": {0: "batch", 2: "samples"}, "scores": {0: "batch"}},
            opset_version=OPSET,
        )
        torch.onnx.export(
            _part(campplus, "front"),
            (torch.zeros(2, 998, 80),),
            str(out / FRONT_FILE),
            dynamo=False,
            input_names=["fbank"],
            output_names=["front"],
            dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "front": {0: "batch", 2: "frames"}},
            opset_version=OPSET,
        )
        torch.onnx.export(
            _part(campplus, "back"),
            (torch.zeros(2, campplus.head.out_channels, 998),),
            str(out / BACK_FILE),
            dynamo=False,
            input_names=["front"],
            output_names=["frames"],
            dynamic_axes={"front": {0: "batch", 2: "frames"}, "frames": {0: "batch", 2: "half"}},
            opset_version=OPSET,
        )


def _part(campplus: Any, name: str) -> Any:
    """CAM++'s ``front`` or ``back`` as a module of its own, for the exporter."""
    from torch import nn

    class Part(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = campplus

        def forward(self, x: Any) -> Any:
            return getattr(self.net, name)(x)

    return Part().eval()


def providers(gpu: int | None) -> list[Any]:
    """ONNX Runtime execution providers: the CPU's, or CUDA device ``gpu`` first (pure)."""
    if gpu is None:
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": gpu}), "CPUExecutionProvider"]


ARENA_FIRST_CHUNK = 1 << 20
"""Bytes of the shared arena's first chunk; it grows by what each allocation asks for."""


_ARENA_LOCK = threading.Lock()
_arena: list[bool] = []
"""Holds True once the shared arena is registered (two networks may load at once)."""


def shared_cpu_arena() -> None:
    """One ONNX Runtime memory arena for every CPU session of this process, registered once
    (sessions ask for it with ``session.use_env_allocators``).

    Without an arena every activation of every call was malloc'd and freed: glibc's heap,
    shared with CTranslate2's threads, then kept growing with freed memory it could not give
    back (fast on a 60-min file: 1.1 GB of heap, 0.65 GB of it free, and a peak of 1.32 GB).
    An arena per session held each network's largest activations for each thread count
    (0.23-0.33 GB).  One arena that grows by what is asked (not to the next power of two)
    holds what the calls running at once need: about 0.15 GB (issue 35, bench/RESULTS.md)."""
    import onnxruntime as ort

    with _ARENA_LOCK:
        if _arena:
            return
        cfg = ort.OrtArenaCfg(
            {
                "max_mem": 0,  # no limit
                "arena_extend_strategy": 1,  # kSameAsRequested
                "initial_chunk_size_bytes": ARENA_FIRST_CHUNK,
                "max_dead_bytes_per_chunk": -1,  # ONNX Runtime's default
            }
        )
        info = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        ort.create_and_register_allocator(info, cfg)
        _arena.append(True)


@dataclass
class Network:
    """One exported network: ONNX Runtime sessions by intra-op thread count."""

    path: Path
    gpu: int | None = None
    """The CUDA device to run on (ONNX Runtime's CUDA provider, the CPU's for what it lacks);
    None: the CPU."""
    threads: int = 1
    """Intra-op threads of the next call (the worker's grant; it may change between calls)."""
    _sessions: dict[int, onnxruntime.InferenceSession] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def session(self, threads: int) -> onnxruntime.InferenceSession:
        import onnxruntime as ort

        if self.gpu is not None:  # CPU threads mean nothing to the CUDA provider: one session
            threads = 1
        with self._lock:
            if threads not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                # on the CPU, one arena shared by every session (see shared_cpu_arena); an
                # arena of its own per session kept ~0.5 GB of activations per worker
                options.enable_cpu_mem_arena = self.gpu is None
                if self.gpu is None:
                    shared_cpu_arena()
                    options.add_session_config_entry("session.use_env_allocators", "1")
                options.log_severity_level = 3
                self._sessions[threads] = ort.InferenceSession(
                    str(self.path), options, providers=providers(self.gpu)
                )
            return self._sessions[threads]

    @property
    def thread_counts(self) -> list[int]:
        """The thread counts a session has been made for."""
        with self._lock:
            return sorted(self._sessions)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        session = self.session(max(1, self.threads))
        name = session.get_inputs()[0].name
        out: np.ndarray = session.run(None, {name: np.ascontiguousarray(array, np.float32)})[0]
        return out


@dataclass
class OnnxNetworks:
    """The diarization networks of one pipeline on ONNX Runtime: segmentation, and CAM++ in
    two parts (its front end, its TDNN layers)."""

    segmentation: Network
    front: Network
    back: Network

    @classmethod
    def load(cls, folder: Path, gpu: int | None = None) -> OnnxNetworks:
        return cls(
            segmentation=Network(folder / SEGMENTATION_FILE, gpu),
            front=Network(folder / FRONT_FILE, gpu),
            back=Network(folder / BACK_FILE, gpu),
        )

    def set_threads(self, threads: int) -> None:
        for network in (self.segmentation, self.front, self.back):
            network.threads = max(1, threads)

    def attach(self, segmentation: Any, embedding: Any) -> None:
        """Make pyannote's segmentation model and the CAM++ embedding model run their networks
        here: everything around the networks stays theirs."""
        import torch

        network = self.segmentation

        def forward(waveforms: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(network(waveforms.numpy()))

        segmentation.forward = forward
        front, back = self.front, self.back
        embedding.front_network = lambda fbank: torch.from_numpy(front(fbank.numpy()))
        embedding.back_network = lambda x: torch.from_numpy(back(x.numpy()))
        embedding.forget_frame_network()
