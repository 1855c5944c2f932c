"""DUQGen's document sampling: k-means clusters, budget allocation, softmax sampling and MMR.

DUQGen (Chandradevan, Dhole and Agichtein, NAACL 2024, arXiv 2404.02489) picks the
documents to write training queries for so that they cover the target corpus:

1. k-means on the (L2-normalised) document embeddings into K clusters (:func:`kmeans`);
   :func:`elbow` reports the SSE of the squared cosine distance over a grid of K and the
   knee (kneed: convex, decreasing) as a suggestion;
2. the budget of N documents is split over the clusters (:func:`allocate`):
   ``n_c = 1 + floor((N - K) * |c| / |corpus|)``, the leftover slots one each to the
   largest clusters (a cluster never gets more than it holds);
3. within a cluster, documents are drawn without replacement with
   ``p(d) = softmax(cos(d, centroid) / T)`` under each of several seeds and pooled
   (:func:`softmax_pool`), then MMR (:func:`mmr`) around the document nearest the
   centroid keeps ``n_c`` of them. The paper's default lambda = 1 is pure similarity to
   that document: diversity is off unless lambda < 1.

:func:`uniform_sample` is the ablation: N documents drawn uniformly from the corpus.
Everything here is numpy (and faiss for k-means); no model is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rankkit.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["Clusters", "allocate", "elbow", "kmeans", "mmr", "normalize_rows", "sample_clusters", "softmax_pool",
           "uniform_sample"]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """``x`` as float32 with every row scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class Clusters:
    """k-means result: ``centroids`` (K x dim, unit norm) and each document's cluster ``labels``."""

    centroids: np.ndarray
    labels: np.ndarray

    @property
    def k(self) -> int:
        """The number of clusters."""
        return int(self.centroids.shape[0])

    def sizes(self) -> np.ndarray:
        """Documents per cluster (length K)."""
        return np.bincount(self.labels, minlength=self.k)

    def sse(self, vectors: np.ndarray) -> float:
        """Sum over documents of the squared cosine distance to their centroid (the elbow's curve)."""
        cos = np.einsum("ij,ij->i", vectors, self.centroids[self.labels])
        return float(np.sum((1.0 - cos) ** 2))


def kmeans(vectors: np.ndarray, k: int, iterations: int = 100, seed: int = 420) -> Clusters:
    """k-means (faiss) of unit-norm ``vectors`` into ``k`` clusters; centroids re-normalised for cosine."""
    import faiss

    n = len(vectors)
    if k < 1:
        raise ConfigError(f"the number of clusters must be >= 1, got {k}")
    if k > n:
        raise ConfigError(f"cannot make {k} clusters from {n} documents (K must be <= the number of documents)")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=iterations, seed=seed, verbose=False, min_points_per_centroid=1,
                      max_points_per_centroid=max(256, -(-n // k)))  # every document, no subsampling
    km.train(x)
    centroids = normalize_rows(km.centroids)
    labels = np.argmax(x @ centroids.T, axis=1).astype(np.int64)  # nearest centroid by cosine
    return Clusters(centroids, labels)


def elbow(vectors: np.ndarray, grid: Sequence[int], iterations: int = 100, seed: int = 420) -> dict[str, object]:
    """SSE of the squared cosine distance for each K of ``grid`` (those <= the documents) and kneed's knee.

    Returns ``{"k": [...], "sse": [...], "knee": K or None}``; the knee is a suggestion (the
    paper's procedure: kneed, convex curve, decreasing, S = 0.01), never applied silently.
    """
    ks = sorted({int(k) for k in grid if 1 <= int(k) <= len(vectors)})
    sse = [kmeans(vectors, k, iterations, seed).sse(vectors) for k in ks]
    knee = None
    if len(ks) >= 3:
        from kneed import KneeLocator

        found = KneeLocator(ks, sse, S=0.01, curve="convex", direction="decreasing").knee
        knee = None if found is None else int(found)
    return {"k": ks, "sse": sse, "knee": knee}


def allocate(sizes: Sequence[int], budget: int) -> np.ndarray:
    """Documents to take from each cluster: ``n_c = 1 + floor((N - K) |c| / |corpus|)``, summing to N.

    The leftover ``N - sum(n_c)`` slots go one each to the largest clusters (ties: lower
    cluster id first). A cluster never gets more documents than it holds: any excess
    moves to the largest clusters that still have room. Raises :class:`ConfigError` when
    K > N (every cluster needs at least one document) or N exceeds the documents.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    k, total = len(sizes), int(sizes.sum())
    if k == 0:
        raise ConfigError("no clusters to allocate the budget over")
    if budget < k:
        raise ConfigError(f"budget N = {budget} is smaller than the number of clusters K = {k}: every cluster "
                          "gets at least one document, so K must be <= N")
    if budget > total:
        raise ConfigError(f"budget N = {budget} exceeds the {total} documents available")
    n = 1 + ((budget - k) * sizes) // total
    order = sorted(range(k), key=lambda c: (-sizes[c], c))  # largest first
    for c in order[:budget - int(n.sum())]:
        n[c] += 1
    excess = int(np.maximum(n - sizes, 0).sum())
    n = np.minimum(n, sizes)
    while excess:  # hand what small clusters cannot hold to the largest clusters with room
        for c in order:
            if excess and n[c] < sizes[c]:
                n[c] += 1
                excess -= 1
    return n


def softmax_pool(similarity: np.ndarray, take: int, temperature: float, seeds: Sequence[int]) -> np.ndarray:
    """Indices drawn without replacement with ``p = softmax(similarity / T)``, ``take`` per seed, pooled (sorted)."""
    if temperature <= 0:
        raise ConfigError(f"sampling temperature must be > 0, got {temperature}")
    take = min(take, len(similarity))
    logits = np.asarray(similarity, dtype=np.float64) / temperature
    p = np.exp(logits - logits.max())
    p = np.maximum(p / p.sum(), 1e-300)  # no zero weights, so `take` distinct draws always exist
    p /= p.sum()
    pooled: set[int] = set()
    for seed in seeds:
        pooled.update(np.random.default_rng(seed).choice(len(p), size=take, replace=False, p=p).tolist())
    return np.array(sorted(pooled), dtype=np.int64)


def mmr(candidates: np.ndarray, anchor: np.ndarray, take: int, lam: float) -> list[int]:
    """Maximal marginal relevance: ``take`` row indices of ``candidates`` (unit vectors), in pick order.

    Each pick maximises ``lam * cos(d, anchor) - (1 - lam) * max_{s picked} cos(d, s)``;
    with ``lam = 1`` this is the order of similarity to ``anchor`` (ties: lower index first).
    """
    if not 0 <= lam <= 1:
        raise ConfigError(f"MMR lambda must be in [0, 1], got {lam}")
    rel = candidates @ anchor
    redundancy = np.full(len(candidates), -np.inf)
    chosen: list[int] = []
    free = np.ones(len(candidates), dtype=bool)
    for _ in range(min(take, len(candidates))):
        score = lam * rel - (1 - lam) * np.where(np.isfinite(redundancy), redundancy, 0.0)
        score[~free] = -np.inf
        pick = int(np.argmax(score))
        chosen.append(pick)
        free[pick] = False
        redundancy = np.maximum(redundancy, candidates @ candidates[pick])
    return chosen


def sample_clusters(vectors: np.ndarray, clusters: Clusters, budget: int, temperature: float = 1.0,
                    seeds: Sequence[int] = (0, 1, 2, 3, 4), lam: float = 1.0) -> list[int]:
    """DUQGen's sample: N distinct row indices of ``vectors`` spread over the clusters (see the module docstring)."""
    take = allocate(clusters.sizes(), budget)
    picked: list[int] = []
    for c in range(clusters.k):
        if take[c] == 0:
            continue
        members = np.flatnonzero(clusters.labels == c)
        sim = vectors[members] @ clusters.centroids[c]
        anchor = vectors[members[int(np.argmax(sim))]]  # the document nearest the centroid
        pool = softmax_pool(sim, int(take[c]), temperature, seeds)
        picked.extend(int(members[pool[i]]) for i in mmr(vectors[members[pool]], anchor, int(take[c]), lam))
    return picked


def uniform_sample(count: int, budget: int, seed: int) -> list[int]:
    """The ablation: ``budget`` distinct indices out of ``count``, uniformly at random (sorted)."""
    if budget > count:
        raise ConfigError(f"budget N = {budget} exceeds the {count} documents available")
    return sorted(np.random.default_rng(seed).choice(count, size=budget, replace=False).tolist())
