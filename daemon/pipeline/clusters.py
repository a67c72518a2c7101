"""Clusters of one voice merged after pyannote's clustering, and a voice it left out found where
it found only one (pure; numpy and scipy).

pyannote's centroid clustering stops merging at 0.7046, a threshold set for its own WeSpeaker
embeddings.  With CAM++ at the profiles' segmentation steps it splits voices (files with too
many speakers on the speakers dev set).  Stopping the clustering itself later (0.80) merged the
two voices of a 35-s window of sample.wav; merging the clusters it ends with, once its small
clusters have joined their nearest large ones, does not, and finds the right number of speakers
more often on three dev-set seeds (bench/RESULTS.md).

pyannote clusters only the embeddings of speakers who speak alone for 2 s of a 10-s chunk; a
voice that never does (a short voice in a two-person call) gets no cluster of its own, and its
turns go to the other voice.  Where the clustering (and the merge) found a single voice,
:func:`lone_voices` looks among the embeddings it left out for a second one.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def unit_centroids(x: np.ndarray, labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """Each cluster's unit centroid (the mean of its members' unit vectors ``x``, rescaled),
    one row per id in ``ids``."""
    return unit(np.vstack([x[labels == k].mean(axis=0) for k in ids]))


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
        cents = unit_centroids(x, labels, ids)
        d = np.linalg.norm(cents[:, None, :] - cents[None, :, :], axis=-1)
        np.fill_diagonal(d, np.inf)
        a, b = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[a, b] >= distance:
            break
        labels[labels == ids[max(a, b)]] = ids[min(a, b)]
    return np.asarray(np.unique(labels, return_inverse=True)[1])


LONE_VOICE_SHARE = 0.1
"""A left-out embedding is a candidate voice when its speaker speaks alone for this share of
its chunk (1 s of pyannote's 10-s chunks, against the clustering's 2 s)."""
LONE_VOICE_MEMBERS = 3
"""Candidates a voice needs to be one (never fewer than pyannote's least cluster size)."""


def lone_voices(
    embeddings: np.ndarray,
    candidate_chunks: np.ndarray,
    candidate_speakers: np.ndarray,
    train_chunks: np.ndarray,
    train_speakers: np.ndarray,
    train_clusters: np.ndarray,
    threshold: float,
    least_members: int,
    room: int | None = None,
    far: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clustering's training set (chunk and speaker indices, cluster labels 0..k-1) with
    the voices it missed added as clusters k, k+1, ...

    ``embeddings``: (chunks, speakers, dim); the candidates are the (chunk, speaker) pairs given
    (pyannote's ``filter_embeddings`` at a lower share of speech alone) outside the training
    set.  A candidate is unexplained
    when its unit vector lies farther than ``threshold`` (or ``far``) from every cluster's unit
    centroid (the euclidean distance centroid linkage stops at); the unexplained are clustered
    by centroid linkage at ``threshold`` and each group of at least ``least_members`` becomes a
    cluster (at most ``room`` of them, the largest first)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if train_clusters.size == 0 or room == 0:
        return train_chunks, train_speakers, train_clusters
    trained = np.zeros(embeddings.shape[:2], dtype=bool)
    trained[train_chunks, train_speakers] = True
    left_out = ~trained[candidate_chunks, candidate_speakers]
    chunks, speakers = candidate_chunks[left_out], candidate_speakers[left_out]
    if chunks.size < max(1, least_members):
        return train_chunks, train_speakers, train_clusters
    known = unit(embeddings[train_chunks, train_speakers])
    count = int(train_clusters.max()) + 1
    centroids = unit_centroids(known, train_clusters, range(count))
    candidates = unit(embeddings[chunks, speakers])
    distance = np.linalg.norm(candidates[:, None, :] - centroids[None, :, :], axis=-1)
    unexplained = distance.min(axis=1) > (threshold if far is None else far)
    if unexplained.sum() < max(1, least_members):
        return train_chunks, train_speakers, train_clusters
    chunks, speakers = chunks[unexplained], speakers[unexplained]
    vectors = candidates[unexplained]
    if len(vectors) == 1:
        groups = np.zeros(1, dtype=int)
    else:
        groups = fcluster(linkage(vectors, method="centroid"), threshold, "distance") - 1
    ids, sizes = np.unique(groups, return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    new = [int(ids[i]) for i in order if sizes[i] >= least_members][:room]
    if not new:
        return train_chunks, train_speakers, train_clusters
    keep = np.isin(groups, new)
    relabel = {g: count + i for i, g in enumerate(new)}
    labels = np.array([relabel[g] for g in groups[keep]], dtype=train_clusters.dtype)
    return (
        np.concatenate([train_chunks, chunks[keep]]),
        np.concatenate([train_speakers, speakers[keep]]),
        np.concatenate([train_clusters, labels]),
    )
