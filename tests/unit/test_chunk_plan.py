from __future__ import annotations

from itertools import pairwise

import pytest

from daemon.pipeline.vad import Region, chunk_samples, plan_chunks, plan_windows, to_original_time


def regions(*pairs: tuple[float, float]) -> list[Region]:
    return [Region(a, b) for a, b in pairs]


def test_empty_plan() -> None:
    assert plan_chunks([], 30) == []


def test_groups_regions_up_to_limit() -> None:
    plan = plan_chunks(regions((0, 10), (12, 22), (25, 35), (40, 41)), 25)
    assert [[(r.start, r.end) for r in c.regions] for c in plan] == [
        [(0, 10), (12, 22)],
        [(25, 35), (40, 41)],
    ]
    assert [c.index for c in plan] == [0, 1]


def test_cuts_only_between_regions() -> None:
    rs = regions(*[(i * 7.0, i * 7.0 + 5.0) for i in range(30)])
    plan = plan_chunks(rs, 21)
    flat = [r for c in plan for r in c.regions]
    assert flat == rs  # nothing lost, nothing reordered, nothing split
    assert all(c.speech <= 21 for c in plan)


def test_long_region_becomes_its_own_chunk() -> None:
    plan = plan_chunks(regions((0, 5), (6, 100), (101, 103)), 30)
    assert [(c.start, c.end) for c in plan] == [(0, 5), (6, 100), (101, 103)]


def test_zero_length_regions_dropped() -> None:
    assert plan_chunks(regions((1, 1), (2, 3)), 30)[0].regions == (Region(2, 3),)


@pytest.mark.parametrize(
    ("t", "expected"),
    [(0.0, 10.0), (1.5, 11.5), (2.0, 12.0), (2.5, 20.5), (5.0, 23.0), (9.0, 23.0)],
)
def test_time_mapping_through_joined_regions(t: float, expected: float) -> None:
    rs = (Region(10, 12), Region(20, 23))
    assert to_original_time(t, rs) == pytest.approx(expected)


def test_chunk_samples() -> None:
    [c] = plan_chunks(regions((0.5, 1.0), (2.0, 2.25)), 30)
    assert chunk_samples(c) == [(8000, 16000), (32000, 36000)]


def test_windows_short_file_is_one_window() -> None:
    assert plan_windows(100.0, regions((1, 50)), 80) == [(0.0, 100.0)]


def test_windows_cover_the_file_and_cut_in_silences() -> None:
    rs = regions(*[(i * 10.0, i * 10.0 + 8.0) for i in range(60)])  # gaps at 8-10, 18-20, ...
    win = plan_windows(600.0, rs, 100)
    assert win[0][0] == 0.0 and win[-1][1] == 600.0
    assert all(a[1] == b[0] for a, b in pairwise(win))
    for _, end in win[:-1]:
        assert end % 10 == 9.0  # the middle of a silence
    assert all(60 <= e - s <= 150 for s, e in win)


def test_windows_without_silence_cut_at_targets() -> None:
    assert plan_windows(250.0, regions((0, 250)), 100) == [(0.0, 100.0), (100.0, 250.0)]
