"""merge_close: clusters of one voice merged after pyannote's clustering, closest first."""

from __future__ import annotations

import numpy as np

from daemon.pipeline.clusters import merge_close


def around(rng: np.random.Generator, centre: np.ndarray, n: int) -> np.ndarray:
    return centre + 0.02 * rng.normal(size=(n, centre.size))


def test_clusters_closer_than_the_distance_merge_and_far_ones_stay() -> None:
    rng = np.random.default_rng(0)
    a = np.eye(8)[0]
    a2 = a + 0.3 * np.eye(8)[1]  # the same voice, split: unit centroids ~0.29 apart
    b = np.eye(8)[2]  # another voice: ~1.41 away
    x = np.vstack([around(rng, a, 4), around(rng, a2, 3), around(rng, b, 5)])
    labels = np.array([0] * 4 + [1] * 3 + [2] * 5)
    assert merge_close(x, labels, 0.80).tolist() == [0] * 7 + [1] * 5
    assert merge_close(x, labels, 0.20).tolist() == labels.tolist()  # nothing that close


def test_the_closest_pair_merges_first_and_least_is_kept() -> None:
    rng = np.random.default_rng(1)
    a, b = np.eye(8)[0], np.eye(8)[1]
    mid = (a + b) / np.linalg.norm(a + b)  # 0.77 from a and from b; a and b are 1.41 apart
    x = np.vstack([around(rng, a, 3), around(rng, mid, 3), around(rng, b, 3)])
    labels = np.repeat([0, 1, 2], 3)
    merged = merge_close(x, labels, 0.80)
    assert len(set(merged.tolist())) == 2  # one merge, then the centroids are too far apart
    assert merge_close(x, labels, 0.80, least=3).tolist() == labels.tolist()
    assert merge_close(x, labels, 2.0, least=2).max() == 1


def test_labels_come_back_numbered_from_zero() -> None:
    rng = np.random.default_rng(2)
    a, b = np.eye(4)[0], np.eye(4)[3]
    x = np.vstack([around(rng, b, 2), around(rng, a, 2)])
    assert merge_close(x, np.array([5, 5, 2, 2]), 0.5).tolist() == [1, 1, 0, 0]
    assert merge_close(x[:1], np.array([7]), 0.8).tolist() == [0]
