"""The diarization's clustering: pyannote's agglomerative one, then the merge and lone voices.

:mod:`daemon.pipeline.clusters` holds the pure steps (:func:`merge_close`, :func:`lone_voices`);
this module fits them into the pipeline, as the clustering pyannote's SpeakerDiarization calls.
pyannote (and with it torchaudio) is imported through :mod:`daemon.pipeline.pyannote_env`, first
of all, so this module may be the first of the diarization code a process imports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from daemon.pipeline import pyannote_env

pyannote_env.load()  # pyannote.audio imports torchaudio: that import is made safe first

from pyannote.audio.pipelines.clustering import AgglomerativeClustering  # noqa: E402

from daemon.pipeline.clusters import LONE_VOICE_MEMBERS, lone_voices, merge_close  # noqa: E402


class SpeakerClustering(AgglomerativeClustering):
    """pyannote's agglomerative clustering (with the ``metric`` of the clustering it replaces),
    then :func:`merge_close` at ``distance`` on the clusters it ends with (0: not; not when the
    number of speakers is given; never below the least number asked for), then, where
    :meth:`looks_for_lone_voices` (a single voice found) and the number of speakers is not
    given, :func:`lone_voices` among the embeddings whose speaker speaks alone for
    ``lone_share`` of a chunk (0: not; never where pyannote clusters nothing, i.e. at most one
    speaker asked for or fewer than two embeddings to cluster).  One call at a time, like the
    pipeline that holds it.  A subclass may look for lone voices elsewhere (its own
    :meth:`looks_for_lone_voices`, ``far`` and ``members``: bench/clusters.py)."""

    segmentations: Any = None
    """This call's segmentations, kept where lone voices may be looked for."""
    hints: tuple[int | None, float | None] = (None, None)
    far: float | None = None
    """:func:`lone_voices`' distance from every centroid (None: the threshold)."""
    members = LONE_VOICE_MEMBERS

    def __init__(
        self, metric: str = "cosine", distance: float = 0.0, lone_share: float = 0.0
    ) -> None:
        super().__init__(metric=metric)
        self.distance = distance
        self.lone_share = lone_share

    def looks_for_lone_voices(self, found: int) -> bool:
        return found == 1

    def __call__(
        self,
        embeddings: np.ndarray,
        segmentations: Any = None,
        num_clusters: int | None = None,
        min_clusters: int | None = None,
        max_clusters: int | None = None,
        **kwargs: Any,
    ) -> Any:
        self.segmentations = segmentations if self.lone_share > 0 else None
        self.hints = (num_clusters, max_clusters)
        return super().__call__(
            embeddings, segmentations, num_clusters, min_clusters, max_clusters, **kwargs
        )

    def cluster(
        self,
        embeddings: np.ndarray,
        min_clusters: int | None = None,
        max_clusters: int | None = None,
        num_clusters: int | None = None,
    ) -> np.ndarray:
        labels = np.asarray(super().cluster(embeddings, min_clusters, max_clusters, num_clusters))
        if num_clusters is not None or self.distance <= 0:
            return labels
        return merge_close(embeddings, labels, self.distance, least=max(1, min_clusters or 1))

    def assign_embeddings(
        self,
        embeddings: np.ndarray,
        chunks: np.ndarray,
        speakers: np.ndarray,
        clusters: np.ndarray,
        constrained: bool = False,
    ) -> Any:
        known, most = self.hints
        clusters = np.asarray(clusters)
        found = int(clusters.max()) + 1 if clusters.size else 0
        if self.segmentations is not None and known is None and self.looks_for_lone_voices(found):
            # the candidates: pyannote's own filter, at the lone voices' share of speech alone
            _, candidate_chunks, candidate_speakers = self.filter_embeddings(
                embeddings, self.segmentations, min_active_ratio=self.lone_share
            )
            # pyannote's least cluster size (as its cluster() caps it)
            size = min(self.min_cluster_size, max(1, round(0.1 * clusters.size)))
            chunks, speakers, clusters = lone_voices(
                embeddings,
                candidate_chunks,
                candidate_speakers,
                np.asarray(chunks),
                np.asarray(speakers),
                clusters,
                self.threshold,
                max(self.members, size),
                # pyannote passes an infinite maximum when none is given
                None if most is None or not np.isfinite(most) else max(0, int(most) - found),
                self.far,
            )
        return super().assign_embeddings(embeddings, chunks, speakers, clusters, constrained)


def speaker_clustering(
    distance: float, metric: str = "cosine", lone_share: float = 0.0
) -> SpeakerClustering:
    """The pipeline's clustering (:class:`SpeakerClustering`): merging at ``distance``, lone
    voices at ``lone_share``, with the ``metric`` of the clustering it replaces."""
    return SpeakerClustering(metric, distance, lone_share)
