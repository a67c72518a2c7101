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


def test_the_closest_pair_goes_first_not_the_first_pair_under_the_distance() -> None:
    rng = np.random.default_rng(3)
    e = np.eye(8)
    a = e[0]
    near_a = (e[0] + 0.55 * e[1]) / np.linalg.norm(e[0] + 0.55 * e[1])  # ~0.5 from a
    b = (e[2] + 0.8 * e[0]) / np.linalg.norm(e[2] + 0.8 * e[0])  # ~0.7 from a
    x = np.vstack([around(rng, b, 3), around(rng, a, 3), around(rng, near_a, 3)])
    labels = np.repeat([0, 1, 2], 3)
    # b (label 0) is under 0.8 from a too, but a and near_a are closer: they merge first, and
    # their merged centroid lies farther from b than 0.8
    assert merge_close(x, labels, 0.80).tolist() == [0] * 3 + [1] * 6


def test_labels_that_skip_numbers_merge_by_their_ids() -> None:
    rng = np.random.default_rng(4)
    e = np.eye(6)
    x = np.vstack([around(rng, e[0], 2), around(rng, e[3], 2), around(rng, e[3], 2)])
    assert merge_close(x, np.array([0, 0, 3, 3, 7, 7]), 0.5).tolist() == [0, 0, 1, 1, 1, 1]


def test_pyannote_clustering_then_merge_respects_the_speaker_hints() -> None:
    """The pipeline's clustering class itself (no model): two clusters of one voice split by
    pyannote's threshold are merged; not when the number of speakers is given, and never
    below the least number asked for."""
    from daemon.pipeline.speaker_clustering import speaker_clustering

    rng = np.random.default_rng(5)
    e = np.eye(8)
    one = (e[0] + 0.5 * e[1]) / np.linalg.norm(e[0] + 0.5 * e[1])  # ~0.46 from e[0]
    x = np.vstack([around(rng, e[0], 6), around(rng, one, 6), around(rng, e[5], 6)])
    clustering = speaker_clustering(0.80)
    clustering.instantiate({"method": "centroid", "min_cluster_size": 2, "threshold": 0.3})

    def labels(**hints: int | None) -> list[int]:
        out = clustering.cluster(x.copy(), **{"min_clusters": 1, "max_clusters": 18, **hints})
        return np.asarray(out).tolist()

    found = labels()
    assert len(set(found)) == 2 and len(set(found[:12])) == 1 and found[12] != found[0]
    assert len(set(labels(num_clusters=3))) == 3  # the number given: no merging
    assert len(set(labels(min_clusters=3))) == 3  # never below the least asked for
