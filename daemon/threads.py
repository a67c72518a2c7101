"""How a worker's threads are used (pure): the split between ASR lanes and diarization, and the
environment that sizes the numeric libraries' thread pools.

A worker is granted ``threads`` cores by the planner when it is started; nothing else decides how
many threads a job, a model or a library may use.
"""

from __future__ import annotations

from dataclasses import dataclass

LANE_THREADS_FROM = 4
"""From this many ASR threads on, lanes get two threads each (CTranslate2 still scales from one
to two threads; past that, more lanes would multiply its per-replica buffers)."""

POOL_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""OpenMP/MKL/numexpr pools: sized to the worker's grant before CTranslate2 and torch load."""

DETERMINISTIC_ENV = {"OPENBLAS_NUM_THREADS": "1"}
"""numpy's BLAS (faster-whisper's mel features) sums in an order that depends on its thread
count, so a transcript would depend on the grant; one thread keeps a resumed job's output equal
to an uninterrupted run's.  Set for the whole process tree by ``daemon/__init__``."""


def asr_lanes(threads: int) -> tuple[int, int]:
    """(lanes, threads per lane) for ASR granted ``threads``: chunks of one file run side by
    side on CTranslate2 replicas sharing the weights, rather than one chunk on all threads.
    One-thread lanes up to :data:`LANE_THREADS_FROM`, two-thread lanes from there; lanes x
    threads never exceeds the grant (see bench/RESULTS.md for the measurement)."""
    threads = max(1, threads)
    if threads < LANE_THREADS_FROM:
        return threads, 1
    return threads // 2, 2


@dataclass(frozen=True)
class ThreadSplit:
    threads: int
    """The worker's grant."""
    overlap: bool
    """Diarization runs beside ASR (each with its share) rather than after it."""
    asr: int
    diarize: int
    lanes: int
    """ASR lanes the model is loaded with (for the whole grant)."""
    per_lane: int
    open_lanes: int
    """Lanes in use while diarization runs beside ASR; all of them once it has finished."""


def split(threads: int, overlap: bool, diarize: bool) -> ThreadSplit:
    """Share a worker's ``threads`` between ASR and diarization.

    With overlap (asked for, diarization on, at least two threads) ASR gets the larger half and
    diarization the rest; whichever finishes first hands its threads to the other.  Otherwise
    each uses all of them in turn.  Never more threads than granted.
    """
    threads = max(1, threads)
    beside = overlap and diarize and threads >= 2
    asr = threads - threads // 2 if beside else threads
    lanes, per_lane = asr_lanes(threads)
    return ThreadSplit(
        threads=threads,
        overlap=beside,
        asr=asr,
        diarize=threads // 2 if beside else threads,
        lanes=lanes,
        per_lane=per_lane,
        open_lanes=max(1, asr // per_lane) if beside else lanes,
    )


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a worker process granted ``threads`` (set before numpy or torch load)."""
    return {**{name: str(threads) for name in POOL_ENV}, **DETERMINISTIC_ENV}
