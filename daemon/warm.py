"""The models of one worker process: loaded on first use, kept warm for later jobs (a worker
idle for ``[daemon] model_idle_seconds`` exits: :mod:`daemon.pool`).  Nothing here decides
threads: every call says how many it gets.

Before a Whisper model is loaded its weights are verified (:func:`daemon.modelstore.ensure_intact`:
re-hashed, repaired from the packages where they no longer verify), once per process and model,
and again only when its model.bin changed since (its inode, size, mtime or ctime: rewriting a
file's bytes changes its ctime even where its mtime is put back).  So a result cached under a
model's identity was computed with the weights that identity names.  A load that fails all the
same is a :class:`~daemon.errors.ModelError` naming the model (permanent), not whatever the
runtime raised."""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from daemon import devices, libdirs, modelstore, retry
from daemon.config import Config
from daemon.devices import CPU, Device
from daemon.modelstore import ResolvedModel
from daemon.pipeline.asr import AsrModel
from daemon.pipeline.diarize import DiarizeParams
from daemon.threads import asr_lanes

if TYPE_CHECKING:
    from daemon.pipeline.diarize import Diarizer

log = logging.getLogger(__name__)


@dataclass
class WarmModels:
    """Models of one process, loaded on first use and kept for later jobs."""

    cache_dir: Path
    allow_download: bool = False
    diarization_runtime: str = "onnxruntime"
    device: Device = CPU
    """Where the models run (:mod:`daemon.devices`)."""
    loads: int = 0
    _resolved: dict[str, ResolvedModel] = field(default_factory=dict)
    _verified: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Model identity -> its model.bin's :func:`~daemon.modelstore.fingerprint` when it was
    last verified in this process."""
    _asr: dict[tuple[str, str, int], AsrModel] = field(default_factory=dict)
    _diarizers: dict[DiarizeParams, Diarizer] = field(default_factory=dict)
    _gpu_memory: int | None = None
    """The GPU's size once asked (-1: NVML did not tell)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, config: Config, device: Device | None = None) -> WarmModels:
        """The models of ``config``, run on ``device`` (a worker's, given by its pool); none
        given (a command such as ``transcribe``): ``[compute] device`` resolved here, which
        asks the runtimes what they see."""
        libdirs.confine(config.models.cache_dir)  # before the runtimes load (no-op under the CLI)
        runtime = config.models.diarization_runtime
        if device is None:
            device = devices.resolve(config.compute.device, runtime)
        return cls(
            cache_dir=config.models.cache_dir,
            allow_download=config.models.allow_download,
            diarization_runtime=runtime,
            device=device,
        )

    def gpu_memory(self) -> int | None:
        """Bytes of memory of this process's GPU (None on the CPU, or where NVML does not
        tell); asked of NVML once, not per job (a GPU's size does not change)."""
        if self.device.kind != "cuda":
            return None
        if self._gpu_memory is None:
            found = [g.memory_total for g in devices.gpu_loads() if g.index == self.device.index]
            self._gpu_memory = found[0] if found else -1
        return self._gpu_memory if self._gpu_memory >= 0 else None

    def resolve(self, name: str) -> ResolvedModel:
        with self._lock:
            if name not in self._resolved:
                self._resolved[name] = modelstore.resolve(name, self.cache_dir, self.allow_download)
            return self._resolved[name]

    def asr(self, resolved: ResolvedModel, compute_type: str, threads: int) -> AsrModel:
        """The warm Whisper model for ``threads``, split into lanes (see
        :func:`daemon.threads.asr_lanes`); CTranslate2 fixes them when it loads."""
        lanes, per_lane = asr_lanes(threads)
        key = (resolved.identity, compute_type, threads)
        with self._lock:
            if key not in self._asr:
                self._verify(resolved)
                started = time.perf_counter()
                try:
                    self._asr[key] = AsrModel(
                        resolved, compute_type, per_lane, lanes, self.device.kind, self.device.index
                    )
                except Exception as exc:
                    if retry.out_of_memory(exc) or retry.gpu_out_of_memory(exc, self.device.name):
                        raise  # not the model's fault: retried (lighter, or on the CPU)
                    raise modelstore.load_error(resolved, exc, self.device.name) from exc
                self.loads += 1
                log.info(
                    "loaded model %s",
                    resolved.name,
                    extra={
                        "model": resolved.name,
                        "compute_type": compute_type,
                        "device": self.device.name,
                        "lanes": lanes,
                        "seconds": round(time.perf_counter() - started, 2),
                    },
                )
            return self._asr[key]

    def _verify(self, resolved: ResolvedModel) -> None:
        """:func:`daemon.modelstore.ensure_intact` the first time this process loads the
        model, and whenever its model.bin changed since (under the lock)."""
        seen = modelstore.fingerprint(resolved.path)
        if seen and self._verified.get(resolved.identity) == seen:
            return
        if modelstore.ensure_intact(resolved):  # repaired: a new file
            seen = modelstore.fingerprint(resolved.path)
        self._verified[resolved.identity] = seen

    def diarizer(self, params: DiarizeParams, threads: int) -> Diarizer:
        """The warm diarization pipeline, set to use ``threads`` torch threads."""
        from daemon.pipeline.diarize import Diarizer

        with self._lock:
            if params not in self._diarizers:
                started = time.perf_counter()
                onnx_cache = self.cache_dir if self.diarization_runtime == "onnxruntime" else None
                gpu = self.device.index if self.device.diarization_on_gpu else None
                self._diarizers[params] = Diarizer(params, onnx_cache=onnx_cache, gpu=gpu)
                self.loads += 1
                log.info(
                    "loaded diarization pipeline",
                    extra={
                        "step": params.segmentation_step,
                        "runtime": self.diarization_runtime,
                        "seconds": round(time.perf_counter() - started, 2),
                    },
                )
            diarizer = self._diarizers[params]
        diarizer.threads = max(1, threads)
        return diarizer

    def widen(self, params: DiarizeParams, threads: int) -> None:
        """Let a running diarization take ``threads`` from its next batch on (ASR is done)."""
        with self._lock:
            diarizer = self._diarizers.get(params)
        if diarizer is not None:
            diarizer.threads = max(1, threads)

    def unload(self) -> None:
        """Drop every loaded model; the next job finds, verifies and loads them again (a local
        folder replaced meanwhile gets its new identity).  The daemon's idle workers exit
        instead: an emptied worker still held 0.7-0.9 GB (``bench.worker_memory``)."""
        with self._lock:
            self._asr.clear()
            self._diarizers.clear()
            self._resolved.clear()
            self._verified.clear()
        gc.collect()
