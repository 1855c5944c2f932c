"""Objectives against brute-force formulas, weights, and the unknown-name error."""

from __future__ import annotations

import math

import pytest
import torch

from rankkit.errors import ConfigError
from rankkit.train.objectives import bce, canonical_objective, get_objective, margin, ranknet, softmax

S = torch.tensor([[2.0, 0.5, -1.0, 0.3], [0.1, 0.4, 1.2, -0.7]])
Y = torch.tensor([[1.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]])


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_bce_equals_formula_and_per_sample_weights() -> None:
    w = torch.tensor([[1.0, 2.0, 0.5, 1.0], [0.0, 1.0, 3.0, 1.0]])
    terms, weights = [], []
    for g in range(2):
        for i in range(4):
            s, y = S[g, i].item(), float(Y[g, i] > 0)
            terms.append(-(y * math.log(_sigmoid(s)) + (1 - y) * math.log(1 - _sigmoid(s))))
            weights.append(w[g, i].item())
    assert bce(S, Y).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)
    expected = sum(t * x for t, x in zip(terms, weights)) / sum(weights)
    assert bce(S, Y, w).item() == pytest.approx(expected, rel=1e-6)


def _pairs_brute(fn, weights=None) -> float:  # type: ignore[no-untyped-def]
    total, norm = 0.0, 0.0
    for g in range(S.shape[0]):
        wg = 1.0 if weights is None else weights[g]
        for i in range(4):
            for j in range(4):
                if Y[g, i] > Y[g, j]:
                    total += wg * fn(S[g, i].item() - S[g, j].item())
                    norm += wg
    return total / norm


def test_ranknet_and_margin_equal_brute_force_over_pairs() -> None:
    assert ranknet(S, Y).item() == pytest.approx(_pairs_brute(lambda d: math.log1p(math.exp(-d))), rel=1e-6)
    assert margin(S, Y).item() == pytest.approx(_pairs_brute(lambda d: max(0.0, 1.0 - d)), rel=1e-6)
    w = [0.25, 2.0]
    assert ranknet(S, Y, torch.tensor(w)).item() == pytest.approx(
        _pairs_brute(lambda d: math.log1p(math.exp(-d)), w), rel=1e-6)


def test_softmax_is_listwise_cross_entropy() -> None:
    one = softmax(S[:1], Y[:1]).item()
    expected = -math.log(math.exp(2.0) / sum(math.exp(x) for x in S[0].tolist()))
    assert one == pytest.approx(expected, rel=1e-6)
    # graded labels: target distribution 2/3, 1/3
    logp = torch.log_softmax(S[1], 0)
    assert softmax(S[1:], Y[1:]).item() == pytest.approx(-(2 / 3 * logp[0] + 1 / 3 * logp[1]).item(), rel=1e-6)
    w = torch.tensor([1.0, 3.0])
    per = [softmax(S[:1], Y[:1]).item(), softmax(S[1:], Y[1:]).item()]
    assert softmax(S, Y, w).item() == pytest.approx((per[0] + 3 * per[1]) / 4, rel=1e-6)


def test_uniform_weights_change_nothing_and_gradients_flow() -> None:
    s = S.clone().requires_grad_(True)
    for name in ("bce", "ranknet", "margin", "softmax"):
        fn = get_objective(name)
        w = torch.full((2, 4), 3.0) if name == "bce" else torch.full((2,), 3.0)
        assert fn(s, Y, w).item() == pytest.approx(fn(s, Y).item(), rel=1e-6)
    softmax(s, Y).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_group_without_positive_is_an_error() -> None:
    with pytest.raises(ValueError, match="no relevant"):
        softmax(S, torch.zeros_like(S))
    with pytest.raises(ValueError, match="no group"):
        ranknet(S, torch.zeros_like(S))


def test_objective_names_aliases_and_unknown() -> None:
    assert canonical_objective("listwise") == "softmax"
    assert canonical_objective("pairwise") == "ranknet"
    with pytest.raises(ConfigError, match=r"unknown objective 'softmx'.*did you mean 'softmax'"):
        get_objective("softmx")
