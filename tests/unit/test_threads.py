"""How a worker's threads are shared (daemon.threads): one place, pure."""

from __future__ import annotations

import pytest

from daemon.threads import ThreadSplit, asr_lanes, split, worker_env


@pytest.mark.parametrize(
    ("threads", "lanes"),
    [(0, (1, 1)), (1, (1, 1)), (2, (2, 1)), (3, (3, 1)), (4, (2, 2)), (8, (4, 2)), (9, (4, 2))],
)
def test_asr_lanes_split_the_grant_and_never_exceed_it(
    threads: int, lanes: tuple[int, int]
) -> None:
    assert asr_lanes(threads) == lanes
    assert lanes[0] * lanes[1] <= max(1, threads)


SPLITS = [
    # (threads, overlap asked, diarization on) -> (overlap, asr, diarize, lanes, per lane, open)
    (1, True, True, (False, 1, 1, 1, 1, 1)),  # one thread: one after the other
    (2, True, True, (True, 1, 1, 2, 1, 1)),
    (3, True, True, (True, 2, 1, 3, 1, 2)),
    (4, True, True, (True, 2, 2, 2, 2, 1)),
    (8, True, True, (True, 4, 4, 4, 2, 2)),
    (2, False, True, (False, 2, 2, 2, 1, 2)),  # overlap off: each gets all, in turn
    (2, True, False, (False, 2, 2, 2, 1, 2)),  # no diarization: ASR gets all
    (0, True, True, (False, 1, 1, 1, 1, 1)),  # never below one thread
]


@pytest.mark.parametrize(("threads", "overlap", "diarize", "expected"), SPLITS)
def test_split_table(
    threads: int, overlap: bool, diarize: bool, expected: tuple[bool, int, int, int, int, int]
) -> None:
    s = split(threads, overlap, diarize)
    assert (s.overlap, s.asr, s.diarize, s.lanes, s.per_lane, s.open_lanes) == expected


@pytest.mark.parametrize("threads", range(1, 17))
@pytest.mark.parametrize("overlap", [True, False])
def test_split_never_uses_more_threads_than_granted(threads: int, overlap: bool) -> None:
    s: ThreadSplit = split(threads, overlap, True)
    side_by_side = s.asr + s.diarize if s.overlap else max(s.asr, s.diarize)
    assert side_by_side <= threads
    assert s.lanes * s.per_lane <= threads
    assert s.open_lanes * s.per_lane <= (s.asr if s.overlap else threads)


def test_worker_env_sizes_the_pools_and_pins_blas() -> None:
    env = worker_env(3)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert env["OPENBLAS_NUM_THREADS"] == "1"
