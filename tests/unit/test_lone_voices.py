"""lone_voices: a voice pyannote's clustering left out (it never speaks alone for 2 s of a
chunk) found where the clustering found a single voice; and the pipeline's clustering class
that runs it only there."""

from __future__ import annotations

from typing import Any

import numpy as np

from daemon.pipeline.clusters import lone_voices

DIM = 8
E = np.eye(DIM)


def voice(rng: np.random.Generator, centre: np.ndarray, n: int) -> np.ndarray:
    return centre + 0.02 * rng.normal(size=(n, DIM))


def two_voices() -> np.ndarray:
    """12 chunks, 2 speakers: speaker 0 is voice A, speaker 1 voice B."""
    rng = np.random.default_rng(0)
    embeddings = np.full((12, 2, DIM), np.nan)
    embeddings[:, 0] = voice(rng, E[0], 12)
    embeddings[:, 1] = voice(rng, E[3], 12)
    return embeddings


def every(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (chunk, speaker) with an embedding, as candidates."""
    chunks, speakers = np.nonzero(np.isfinite(embeddings).all(axis=-1))
    return chunks, speakers


def segmentations(clean_b: int) -> Any:
    """12 chunks of 100 frames: speaker 0 alone for 60 frames of each, speaker 1 alone for
    ``clean_b`` frames."""
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    data = np.zeros((12, 100, 2))
    data[:, :60, 0] = 1
    data[:, 70 : 70 + clean_b, 1] = 1
    return SlidingWindowFeature(data, SlidingWindow(start=0.0, duration=10.0, step=1.0))


def train_a() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What pyannote's clustering trained on: voice A's 12 embeddings, one cluster."""
    return np.arange(12), np.zeros(12, dtype=int), np.zeros(12, dtype=int)


def test_a_left_out_voice_far_from_every_centroid_becomes_a_cluster() -> None:
    embeddings = two_voices()
    chunks, speakers, clusters = lone_voices(embeddings, *every(embeddings), *train_a(), 0.7046, 3)
    added = speakers == 1
    assert added.sum() == 12 and set(clusters[added].tolist()) == {1}
    assert clusters[~added].tolist() == [0] * 12  # the training set is kept as it was
    assert sorted(chunks[added].tolist()) == list(range(12))


def test_nothing_is_added_without_candidates_members_room_or_distance() -> None:
    embeddings = two_voices()
    only_a = every(embeddings[:, :1])  # B never speaks alone long enough to be a candidate
    assert lone_voices(embeddings, *only_a, *train_a(), 0.7046, 3)[2].max() == 0
    candidates = every(embeddings)
    assert lone_voices(embeddings, *candidates, *train_a(), 0.7046, 13)[2].max() == 0  # members
    assert lone_voices(embeddings, *candidates, *train_a(), 0.7046, 3, room=0)[2].max() == 0
    near = embeddings.copy()
    near[:, 1] = embeddings[:, 0] + 0.1 * E[1]  # A again, as speaker 1: explained by A
    assert lone_voices(near, *every(near), *train_a(), 0.7046, 3)[2].max() == 0


def test_the_largest_groups_come_first_within_the_room() -> None:
    rng = np.random.default_rng(1)
    embeddings = np.full((12, 3, DIM), np.nan)
    embeddings[:, 0] = voice(rng, E[0], 12)
    embeddings[:8, 1] = voice(rng, E[3], 8)  # voice B in 8 chunks
    embeddings[:5, 2] = voice(rng, E[5], 5)  # voice C in 5
    candidates = every(embeddings)
    _, speakers, clusters = lone_voices(embeddings, *candidates, *train_a(), 0.7046, 3, room=1)
    assert set(clusters.tolist()) == {0, 1} and set(speakers[clusters == 1].tolist()) == {1}
    _, speakers, clusters = lone_voices(embeddings, *candidates, *train_a(), 0.7046, 3)
    assert set(speakers[clusters == 2].tolist()) == {2}


def test_the_pipeline_clustering_looks_for_a_lone_voice_only_where_it_found_one() -> None:
    """The class the profiles run (no model): voice B never speaks alone for 2 s of a chunk,
    so pyannote's clustering leaves it out and gives all of B's turns to A (or none); with
    lone voices B gets its own speaker (if it speaks alone for 1 s of a chunk), and a
    clustering that found two voices is left as it was."""
    from daemon.pipeline.speaker_clustering import speaker_clustering

    def hard(lone_share: float, clean_b: int, **hints: int) -> list[list[int]]:
        embeddings = two_voices()
        clustering = speaker_clustering(0.80, "cosine", lone_share)
        clustering.instantiate({"method": "centroid", "min_cluster_size": 2, "threshold": 0.7046})
        found = clustering(embeddings, segmentations(clean_b), **hints)[0]
        return np.asarray(found).tolist()

    without = hard(0.0, 15)
    assert {row[1] for row in without} <= {0, -2}  # B: A's voice, or no one
    with_lone = hard(0.1, 15)
    assert {row[0] for row in with_lone} == {0} and {row[1] for row in with_lone} == {1}
    # B alone for 0.5 s of a 10-s chunk: not a voice
    assert {row[1] for row in hard(0.1, 5)} <= {0, -2}
    # B alone for 3 s of each chunk: pyannote's clustering finds both, nothing is added
    both = hard(0.1, 30)
    assert {row[0] for row in both} != {row[1] for row in both}
    assert {c for row in both for c in row} == {0, 1}


def test_no_lone_voice_is_looked_for_where_the_clustering_found_two() -> None:
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from daemon.pipeline.speaker_clustering import speaker_clustering

    rng = np.random.default_rng(2)
    embeddings = np.full((12, 3, DIM), np.nan)
    embeddings[:, 0] = voice(rng, E[0], 12)  # A, alone 4 s of each chunk
    embeddings[:, 1] = voice(rng, E[3], 12)  # B, alone 1.5 s: left out of the clustering
    embeddings[:, 2] = voice(rng, E[5], 12)  # C, alone 3 s
    data = np.zeros((12, 100, 3))
    data[:, :40, 0], data[:, 45:60, 1], data[:, 65:95, 2] = 1, 1, 1
    seg = SlidingWindowFeature(data, SlidingWindow(start=0.0, duration=10.0, step=1.0))
    clustering = speaker_clustering(0.80, "cosine", 0.1)
    clustering.instantiate({"method": "centroid", "min_cluster_size": 2, "threshold": 0.7046})
    found = np.asarray(clustering(embeddings, seg)[0])
    assert set(found[:, 0].tolist()) == {0} and set(found[:, 2].tolist()) == {1}
    assert set(found[:, 1].tolist()) <= {0, 1, -2}  # B stays unfound: two voices were found


def test_no_lone_voice_when_the_number_is_given_and_none_beyond_the_most_asked_for() -> None:
    """The class's own gate, called as pyannote calls it after clustering: one cluster found
    (voice A), voice B left out."""
    from daemon.pipeline.speaker_clustering import speaker_clustering

    embeddings = two_voices()

    def speakers_of_b(known: int | None, most: float) -> set[int]:
        clustering = speaker_clustering(0.80, "cosine", 0.1)
        clustering.instantiate({"method": "centroid", "min_cluster_size": 2, "threshold": 0.7046})
        clustering.segmentations = segmentations(15)
        clustering.hints = (known, most)
        hard = clustering.assign_embeddings(embeddings, *train_a())[0]
        return set(np.asarray(hard)[:, 1].tolist())

    assert speakers_of_b(None, np.inf) == {1}  # found
    assert speakers_of_b(2, np.inf) == {0}  # the number was given: nothing is looked for
    assert speakers_of_b(None, 1) == {0}  # at most one speaker asked for: no room
    assert speakers_of_b(None, 2) == {1}
