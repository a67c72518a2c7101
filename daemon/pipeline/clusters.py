"""Clusters of one voice merged after pyannote's clustering (pure; numpy only).

pyannote's centroid clustering stops merging at 0.7046, a threshold set for its own WeSpeaker
embeddings.  With CAM++ at the profiles' segmentation steps it splits voices (files with too
many speakers on the speakers dev set).  Stopping the clustering itself later (0.80) merged the
two voices of a 35-s window of sample.wav; merging the clusters it ends with, once its small
clusters have joined their nearest large ones, does not, and finds the right number of speakers
more often on three dev-set seeds (bench/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

MERGE_DISTANCE = 0.80
"""Clusters whose unit centroids lie closer than this (euclidean distance between the unit
vectors of their members' mean unit embedding; cosine distance 0.32) are merged, closest
first.  pyannote's linkage measures between means that are not rescaled to unit length, which
lie closer together: 0.80 here is a little below 0.80 on its scale."""


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows left as they are), in float64."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.where(norm > 0, norm, 1.0), dtype=np.float64)


def merge_close(
    embeddings: np.ndarray, labels: np.ndarray, distance: float, least: int = 1
) -> np.ndarray:
    """Cluster labels (0..k-1) after merging the two clusters with the closest unit centroids
    (each the mean of its members' unit vectors), again and again while the closest two lie
    nearer than ``distance`` and more than ``least`` clusters remain; renumbered 0..k'-1 in
    the order of the clusters' first labels."""
    x = unit(embeddings)
    labels = np.asarray(labels).copy()
    while True:
        ids = np.unique(labels)
        if len(ids) <= max(1, least):
            break
        cents = unit(np.vstack([x[labels == k].mean(axis=0) for k in ids]))
        d = np.linalg.norm(cents[:, None, :] - cents[None, :, :], axis=-1)
        np.fill_diagonal(d, np.inf)
        a, b = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[a, b] >= distance:
            break
        labels[labels == ids[max(a, b)]] = ids[min(a, b)]
    return np.asarray(np.unique(labels, return_inverse=True)[1])
