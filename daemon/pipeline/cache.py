"""The step cache: each step's output is looked up in, or stored to, ``step_results``.

A step is keyed by (content sha256, step name, hash of its parameters), so the same content is
never computed twice for the same parameters, across requeues, renames and duplicate copies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from daemon.errors import CacheMiss, Cancelled
from daemon.sysload import release_free_memory

log = logging.getLogger(__name__)

PIPELINE_VERSION = 3
"""Bumped when a step's output format or semantics change; part of every cache key."""
STEPS = ("probe", "vad", "language", "asr", "diarize", "diarize_window")
"""The steps whose results are cached (``diarize_window``: one window of a long file)."""


class CacheStore(Protocol):
    def cache_get(self, sha256: str, step: str, params_hash: str) -> Any | None: ...
    def cache_put(
        self, sha256: str, step: str, params_hash: str, payload: Any, now: Any
    ) -> None: ...
    def cache_drop(self, sha256: str, step: str, params_hash: str) -> None: ...


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps({"v": PIPELINE_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class StepStats:
    computed: Counter[str] = field(default_factory=Counter)
    cached: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds during which each step was being computed: instances running at once (ASR
    chunks in parallel lanes) count once, so a step's figure never exceeds the job's.  A
    step's parts are named ``step.part`` (``diarize.segmentation``, ``diarize.embeddings``,
    ``diarize.clustering``) and counted within the step's own figure as well."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds of the whole process over the same time: exact when steps run one after
    the other (``overlap_diarization = false``), an upper bound where ASR and diarization
    overlap."""
    _running: dict[str, tuple[int, float, float]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """Step -> (instances running, wall and CPU clock when the first began)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, step: str, wall: float, cpu: float) -> None:
        """Add ``wall`` and ``cpu`` seconds to ``step`` (for parts measured elsewhere)."""
        with self._lock:  # steps may run in two threads (ASR beside diarization)
            self.seconds[step] = self.seconds.get(step, 0.0) + wall
            self.cpu[step] = self.cpu.get(step, 0.0) + cpu

    def count(self, step: str, cached: bool) -> None:
        with self._lock:
            (self.cached if cached else self.computed)[step] += 1

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Count the block's time as ``step``'s, once however many blocks of it run at once."""
        with self._lock:
            running, wall, cpu = self._running.get(step, (0, 0.0, 0.0))
            if not running:
                wall, cpu = time.perf_counter(), time.process_time()
            self._running[step] = (running + 1, wall, cpu)
        try:
            yield
        finally:
            with self._lock:
                running, wall, cpu = self._running.pop(step)
                if running > 1:
                    self._running[step] = (running - 1, wall, cpu)
                else:
                    self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - wall
                    self.cpu[step] = self.cpu.get(step, 0.0) + time.process_time() - cpu

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            "computed": dict(self.computed),
            "cached": dict(self.cached),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "cpu": {k: round(v, 3) for k, v in self.cpu.items()},
        }


def never() -> bool:
    return False


@dataclass
class StepCache:
    store: CacheStore
    sha256: str
    clock: Callable[[], Any]
    stats: StepStats = field(default_factory=StepStats)
    cache_only: bool = False
    should_stop: Callable[[], bool] = never
    """Asked before each step is computed (and inside long ones): True stops the job there."""

    def checkpoint(self, *_args: Any, **_kwargs: Any) -> None:
        """Raise :class:`Cancelled` if the job was asked to stop (usable as a progress hook)."""
        if self.should_stop():
            raise Cancelled("stopped at a checkpoint")

    def lookup(self, step: str, params: dict[str, Any]) -> Any | None:
        """A step's cached output, or None (nothing computed, nothing counted)."""
        return self.store.cache_get(self.sha256, step, params_hash(params))

    def run(
        self,
        step: str,
        params: dict[str, Any],
        compute: Callable[[], Any],
        unsound: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """The step's cached output, else ``compute()``'s (then cached).  ``unsound`` says why
        a cached output must not be served (None: it may): such a row is dropped and the step
        computed again."""
        key = params_hash(params)
        hit = self.store.cache_get(self.sha256, step, key)
        problem = None if hit is None or unsound is None else unsound(hit)
        if problem is not None:
            log.warning(
                "dropped a cached %s result: %s",
                step,
                problem,
                extra={"sha256": self.sha256, "step": step, "problem": problem},
            )
            self.store.cache_drop(self.sha256, step, key)
            if self.cache_only:
                raise CacheMiss(f"step '{step}' was cached unsound ({problem}); requeue the job")
        elif hit is not None:
            self.stats.count(step, cached=True)
            return hit
        if self.cache_only:
            raise CacheMiss(f"step '{step}' is not in the cache")
        self.checkpoint()
        with self.stats.timed(step):
            payload = compute()
        release_free_memory()  # not part of the step's measured time
        self.store.cache_put(self.sha256, step, key, payload, self.clock())
        self.stats.count(step, cached=False)
        return payload
