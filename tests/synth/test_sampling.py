"""DUQGen's sampling maths: budget allocation, softmax pooling, MMR, k-means, the elbow, uniform sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankkit.errors import ConfigError
from rankkit.synth.sampling import (Clusters, allocate, elbow, kmeans, mmr, normalize_rows, sample_clusters,
                                    softmax_pool, uniform_sample)


@pytest.mark.parametrize("seed", range(30))
def test_allocation_sums_to_n_with_at_least_one_each(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 30))
    sizes = rng.integers(1, 200, size=k)
    n = int(rng.integers(k, sizes.sum() + 1))
    take = allocate(sizes, n)
    assert take.sum() == n
    assert (take >= 1).all()
    assert (take <= sizes).all()


def test_allocation_follows_the_formula_and_gives_leftovers_to_the_largest() -> None:
    sizes = [50, 30, 20]  # N = 10, K = 3: n_c = 1 + floor(7 |c| / 100) = 4, 3, 2 (sum 9); leftover to the largest
    assert allocate(sizes, 10).tolist() == [5, 3, 2]
    assert allocate([10, 10, 10], 4).tolist() == [2, 1, 1]  # a tie goes to the lower cluster id


def test_allocation_never_exceeds_a_cluster() -> None:
    take = allocate([1, 1, 98], 50)  # the formula gives the small clusters 1 each; one larger request is capped
    assert take.tolist() == [1, 1, 48]
    take = allocate([2, 100], 60)
    assert take.sum() == 60 and take[0] <= 2


def test_allocation_errors() -> None:
    with pytest.raises(ConfigError, match="K = 3"):
        allocate([5, 5, 5], 2)
    with pytest.raises(ConfigError, match="exceeds the 15 documents"):
        allocate([5, 5, 5], 16)
    with pytest.raises(ConfigError, match="no clusters"):
        allocate([], 3)


def test_softmax_pool_draws_distinct_indices_within_range() -> None:
    sim = np.linspace(-1, 1, 40)
    pool = softmax_pool(sim, 10, 1.0, [0, 1, 2, 3, 4])
    assert len(set(pool.tolist())) == len(pool) and 10 <= len(pool) <= 40
    assert pool.min() >= 0 and pool.max() < 40
    # asking for more than the cluster holds takes the whole cluster, once
    assert softmax_pool(np.zeros(3), 5, 1.0, [0, 1]).tolist() == [0, 1, 2]
    # a tiny temperature puts the weight on the most similar document (and the draw does not fail
    # although every other weight underflows)
    assert all(39 in softmax_pool(sim, 3, 1e-4, [s]).tolist() for s in range(5))
    with pytest.raises(ConfigError, match="temperature"):
        softmax_pool(sim, 3, 0.0, [0])


def test_mmr_with_lambda_one_is_similarity_order() -> None:
    rng = np.random.default_rng(0)
    cand = normalize_rows(rng.normal(size=(25, 8)))
    anchor = normalize_rows(rng.normal(size=(1, 8)))[0]
    assert mmr(cand, anchor, 25, 1.0) == np.argsort(-(cand @ anchor), kind="stable").tolist()
    assert mmr(cand, anchor, 5, 1.0) == np.argsort(-(cand @ anchor), kind="stable")[:5].tolist()


def test_mmr_matches_brute_force_greedy_and_diversifies() -> None:
    rng = np.random.default_rng(1)
    cand = normalize_rows(rng.normal(size=(12, 4)))
    anchor = cand[0]
    lam = 0.5
    chosen: list[int] = []
    for _ in range(6):  # the textbook definition, one candidate at a time
        best = max((i for i in range(12) if i not in chosen),
                   key=lambda i: (lam * cand[i] @ anchor - (1 - lam) * max((cand[i] @ cand[s] for s in chosen),
                                                                            default=0.0), -i))
        chosen.append(best)
    assert mmr(cand, anchor, 6, lam) == chosen
    # two identical near-anchor documents: lambda = 1 takes both, lambda = 0.3 skips the duplicate
    dup = normalize_rows(np.array([[1, 0.1, 0], [1, 0.1, 0], [0.2, 1, 0], [0, 0.3, 1]], dtype=np.float32))
    a = np.array([1, 0, 0], dtype=np.float32)
    assert mmr(dup, a, 2, 1.0) == [0, 1]
    assert mmr(dup, a, 2, 0.3)[1] != 1
    with pytest.raises(ConfigError, match="lambda"):
        mmr(dup, a, 2, 1.5)


def _blobs(seed: int = 0, per: int = 40, centres: int = 4, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = normalize_rows(rng.normal(size=(centres, dim)))
    return normalize_rows(np.concatenate([c[i] + 0.05 * rng.normal(size=(per, dim)) for i in range(centres)]))


def test_kmeans_is_seeded_and_finds_planted_clusters() -> None:
    x = _blobs()
    a, b = kmeans(x, 4, 20, 420), kmeans(x, 4, 20, 420)
    assert np.array_equal(a.labels, b.labels)
    assert sorted(a.sizes().tolist()) == [40, 40, 40, 40]
    assert np.allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ConfigError, match="cannot make 200 clusters from 160"):
        kmeans(x, 200)


def test_elbow_reports_sse_and_the_planted_knee() -> None:
    report = elbow(_blobs(), [1, 2, 4, 8, 16, 10_000], iterations=20)
    assert report["k"] == [1, 2, 4, 8, 16]  # K above the documents is left out
    sse = report["sse"]
    assert all(a >= b for a, b in itertools.pairwise(sse))
    assert report["knee"] == 4


def test_sample_clusters_spreads_distinct_documents_per_allocation() -> None:
    x = _blobs(per=30)
    clusters = kmeans(x, 4, 20, 420)
    for lam in (1.0, 0.5):
        picked = sample_clusters(x, clusters, 22, temperature=1.0, seeds=[0, 1, 2], lam=lam)
        assert len(picked) == 22 and len(set(picked)) == 22
        per = np.bincount(clusters.labels[picked], minlength=4)
        assert per.tolist() == allocate(clusters.sizes(), 22).tolist()
    assert sample_clusters(x, clusters, 22) == sample_clusters(x, clusters, 22)  # seeded


def test_sample_clusters_with_tiny_clusters_never_exceeds_them() -> None:
    x = normalize_rows(np.random.default_rng(3).normal(size=(12, 5)))
    labels = np.array([0] * 10 + [1, 2])
    cents = normalize_rows(np.stack([x[labels == c].mean(0) for c in range(3)]))
    picked = sample_clusters(x, Clusters(cents, labels), 12)
    assert sorted(picked) == list(range(12))


def test_uniform_sample() -> None:
    s = uniform_sample(100, 30, 7)
    assert len(set(s)) == 30 and s == sorted(s) and s == uniform_sample(100, 30, 7)
    with pytest.raises(ConfigError, match="exceeds"):
        uniform_sample(10, 11, 0)
