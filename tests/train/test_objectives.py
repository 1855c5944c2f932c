"""Objectives against brute-force formulas, weights, settings from YAML mappings, and their errors."""

from __future__ import annotations

import math

import pytest
import torch

from rankkit.errors import ConfigError
from rankkit.train.objectives import (BCE, InfoNCE, Margin, RankNet, Softmax, build_objective, canonical_objective,
                                      objective_spec)

S = torch.tensor([[2.0, 0.5, -1.0, 0.3], [0.1, 0.4, 1.2, -0.7]])
Y = torch.tensor([[1.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]])


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _bce_terms() -> tuple[list[float], list[float]]:
    terms, targets = [], []
    for g in range(2):
        for i in range(4):
            s, y = S[g, i].item(), float(Y[g, i] > 0)
            terms.append(-(y * math.log(_sigmoid(s)) + (1 - y) * math.log(1 - _sigmoid(s))))
            targets.append(y)
    return terms, targets


def test_bce_equals_formula_plain_balanced_and_weighted() -> None:
    terms, targets = _bce_terms()
    assert BCE(pos_weight=None)(S, Y).loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)
    # balanced: 3 positives, 5 negatives -> positives weigh 5/3, so both classes carry equal mass
    cw = [5 / 3 if y else 1.0 for y in targets]
    expected = sum(t * c for t, c in zip(terms, cw)) / sum(cw)
    assert BCE()(S, Y).loss.item() == pytest.approx(expected, rel=1e-6)
    assert sum(c for c, y in zip(cw, targets) if y) == pytest.approx(sum(c for c, y in zip(cw, targets) if not y))
    w = torch.tensor([[1.0, 2.0, 0.5, 1.0], [0.0, 1.0, 3.0, 1.0]])
    ww = [a * b for a, b in zip(cw, w.flatten().tolist())]
    assert BCE()(S, Y, w).loss.item() == pytest.approx(sum(t * x for t, x in zip(terms, ww)) / sum(ww), rel=1e-6)
    fixed = [2.0 if y else 1.0 for y in targets]
    assert BCE(pos_weight=2)(S, Y).loss.item() == pytest.approx(
        sum(t * c for t, c in zip(terms, fixed)) / sum(fixed), rel=1e-6)


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
    assert RankNet()(S, Y).loss.item() == pytest.approx(_pairs_brute(lambda d: math.log1p(math.exp(-d))), rel=1e-6)
    assert Margin()(S, Y).loss.item() == pytest.approx(_pairs_brute(lambda d: max(0.0, 1.0 - d)), rel=1e-6)
    assert Margin(margin=0.5)(S, Y).loss.item() == pytest.approx(_pairs_brute(lambda d: max(0.0, 0.5 - d)), rel=1e-6)
    w = [0.25, 2.0]
    assert RankNet()(S, Y, torch.tensor(w)).loss.item() == pytest.approx(
        _pairs_brute(lambda d: math.log1p(math.exp(-d)), w), rel=1e-6)
    pairs = [(g, i, j) for g in range(2) for i in range(4) for j in range(4) if Y[g, i] > Y[g, j]]
    acc = sum(S[g, i] > S[g, j] for g, i, j in pairs) / len(pairs)
    assert RankNet()(S, Y).logs["pair_accuracy"] == pytest.approx(float(acc))


def test_softmax_is_listwise_cross_entropy() -> None:
    expected = -math.log(math.exp(2.0) / sum(math.exp(x) for x in S[0].tolist()))
    assert Softmax()(S[:1], Y[:1]).loss.item() == pytest.approx(expected, rel=1e-6)
    logp = torch.log_softmax(S[1], 0)
    assert Softmax()(S[1:], Y[1:]).loss.item() == pytest.approx(-(2 / 3 * logp[0] + 1 / 3 * logp[1]).item(), rel=1e-6)
    per = [Softmax()(S[:1], Y[:1]).loss.item(), Softmax()(S[1:], Y[1:]).loss.item()]
    assert Softmax()(S, Y, torch.tensor([1.0, 3.0])).loss.item() == pytest.approx((per[0] + 3 * per[1]) / 4, rel=1e-6)
    t = -math.log(math.exp(2.0 / 0.5) / sum(math.exp(x / 0.5) for x in S[0].tolist()))
    assert Softmax(temperature=0.5)(S[:1], Y[:1]).loss.item() == pytest.approx(t, rel=1e-5)


def test_infonce_equals_brute_force_over_in_batch_candidates() -> None:
    G, n = S.shape
    gen = torch.Generator().manual_seed(3)
    in_batch = torch.randn(G, G * n, generator=gen)
    in_batch[0, :n], in_batch[1, n:] = S[0], S[1]  # own groups' columns carry the group scores
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    expected = 0.0
    for g in range(G):
        pos = g * n + int(labels[g].argmax())
        logits = (in_batch[g] / 0.1).tolist()
        expected += -(logits[pos] - math.log(sum(math.exp(x) for x in logits)))
    out = InfoNCE(temperature=0.1)(S, labels, in_batch=in_batch)
    assert out.loss.item() == pytest.approx(expected / G, rel=1e-5)
    assert out.logs["candidates"] == G * n
    # without in-batch scores (or switched off) it is the listwise softmax over the own group
    assert InfoNCE()(S, labels).loss.item() == pytest.approx(Softmax()(S, labels).loss.item(), rel=1e-6)
    assert InfoNCE(in_batch=False)(S, labels, in_batch=in_batch).loss.item() == pytest.approx(
        Softmax()(S, labels).loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match="in-batch scores must have shape"):
        InfoNCE()(S, labels, in_batch=in_batch[:, :5])


def test_uniform_weights_change_nothing_and_gradients_flow() -> None:
    s = S.clone().requires_grad_(True)
    for name in ("bce", "ranknet", "margin", "softmax", "infonce"):
        obj = build_objective(name)
        w = torch.full((2, 4), 3.0) if obj.pointwise else torch.full((2,), 3.0)
        assert obj(s, Y, w).loss.item() == pytest.approx(obj(s, Y).loss.item(), rel=1e-6)
    Softmax()(s, Y).loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_group_without_positive_is_an_error() -> None:
    with pytest.raises(ValueError, match="no relevant"):
        Softmax()(S, torch.zeros_like(S))
    with pytest.raises(ValueError, match="no group"):
        RankNet()(S, torch.zeros_like(S))


def test_names_settings_and_errors() -> None:
    assert canonical_objective("listwise") == "softmax"
    assert canonical_objective("contrastive") == "infonce"
    assert objective_spec({"name": "hinge", "margin": 0.5}) == {"name": "margin", "margin": 0.5}
    obj = build_objective({"name": "margin", "margin": 0.5})
    assert isinstance(obj, Margin) and obj.margin == 0.5
    with pytest.raises(ConfigError, match=r"unknown objective 'softmx'.*did you mean 'softmax'"):
        build_objective("softmx")
    with pytest.raises(ConfigError, match=r"objective \(margin\): unknown key 'margn' \(did you mean 'margin'\?\)"):
        objective_spec({"name": "margin", "margn": 0.5})
    with pytest.raises(ConfigError, match="needs a 'name' key"):
        objective_spec({"margin": 0.5})
    with pytest.raises(ConfigError, match="temperature must be a number > 0"):
        objective_spec({"name": "infonce", "temperature": 0})
    with pytest.raises(ConfigError, match="pos_weight must be 'balanced'"):
        objective_spec({"name": "bce", "pos_weight": "yes"})
