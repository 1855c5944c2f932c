"""TSPRank's candidate features, heads and stage options (no encoder needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankkit.config import from_mapping
from rankkit.errors import ConfigError
from rankkit.rerank.tsp_model import TSPRankModel
from rankkit.rerank.tsprank import (
    TSPHeadSettings,
    TSPRank,
    TSPRankConfig,
    candidate_features,
    feature_dim,
    order_to_scores,
)


def test_candidate_features_by_hand() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    d = rng.normal(size=(3, 4))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    s = np.array([9.0, 7.0, 2.0])
    f = candidate_features(["product", "doc", "cosine", "score", "rank"], q, d, s)
    assert f.shape == (3, feature_dim(["product", "doc", "cosine", "score", "rank"], 4)) == (3, 11)
    np.testing.assert_allclose(f[:, :4], d * q, rtol=1e-6)
    np.testing.assert_allclose(f[:, 4:8], d, rtol=1e-6)
    np.testing.assert_allclose(f[:, 8], d @ q, rtol=1e-6)
    np.testing.assert_allclose(f[:, 9], (s - s.mean()) / s.std(), rtol=1e-6)
    np.testing.assert_allclose(f[:, 10], [0.0, 0.5, 1.0])
    assert candidate_features(["score"], q, d, np.ones(3)).tolist() == [[0.0]] * 3  # a constant list
    with pytest.raises(ConfigError, match="needs the incoming run's scores"):
        candidate_features(["score"], q, d)


def test_order_to_scores_ranks_the_path_first_to_last() -> None:
    assert order_to_scores(["a", "b", "c"], [2, 0, 1]) == {"c": 3.0, "a": 2.0, "b": 1.0}


@pytest.mark.parametrize("head", ["bilinear", "deep", "separate", "pointwise"])
@pytest.mark.parametrize("layers", [0, 1])
def test_heads_shapes_and_permutation_equivariance(head: str, layers: int) -> None:
    s = TSPHeadSettings(head=head, features=["product", "cosine"], dim=8, layers=layers, attention_heads=2,
                        dim_ff=16, dropout=0.0)
    model = TSPRankModel.new(s, embedding_dim=6, seed=0).eval()
    x = torch.randn(2, 5, model.in_dim)
    out = model(x)
    assert out.shape == ((2, 5) if head == "pointwise" else (2, 5, 5))
    perm = torch.tensor([3, 0, 4, 1, 2])
    moved = model(x[:, perm])
    if head == "pointwise":
        torch.testing.assert_close(moved, out[:, perm])
    elif head != "separate":  # separate's triangles follow positions, not items (as in the paper's code)
        torch.testing.assert_close(moved, out[:, perm][:, :, perm])


def test_separate_head_uses_one_map_above_the_diagonal_and_another_below() -> None:
    s = TSPHeadSettings(head="separate", features=["doc"], dim=0, dropout=0.0)
    model = TSPRankModel.new(s, embedding_dim=3).eval()
    with torch.no_grad():
        model.W[0].copy_(torch.eye(3))
        model.W[1].copy_(-torch.eye(3))
        model.b.zero_()
    x = torch.eye(3)[None] + 1.0
    A = model(x)[0]
    gram = (x[0] @ x[0].T)
    torch.testing.assert_close(A.triu(), gram.triu())
    torch.testing.assert_close(A.tril(-1), -gram.tril(-1))


def test_settings_and_stage_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="features"):
        from_mapping(TSPHeadSettings, {"features": []}, "t")
    with pytest.raises(ConfigError, match="twice"):
        from_mapping(TSPHeadSettings, {"features": ["doc", "doc"]}, "t")
    with pytest.raises(ConfigError, match="divisible"):
        from_mapping(TSPHeadSettings, {"dim": 10, "layers": 1, "attention_heads": 4}, "t")
    with pytest.raises(ConfigError, match="model is required"):
        TSPRank(None)
    with pytest.raises(ConfigError, match="decoder"):
        from_mapping(TSPRankConfig, {"model": "m", "decoder": "gurobi"}, "t")
    with pytest.raises(ConfigError, match="time_limit"):
        from_mapping(TSPRankConfig, {"model": "m", "time_limit": 0}, "t")
    with pytest.raises(ConfigError, match=r"features \[groups, n, 3\]"):
        TSPRankModel.new(TSPHeadSettings(features=["doc"], dim=0), 3)(torch.randn(4, 3))
