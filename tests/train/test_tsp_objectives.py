"""TSPRank's objectives, exactly: the local cross-entropy by hand, the max-margin hinge against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rankkit.errors import ConfigError
from rankkit.train.objectives import build_objective
from rankkit.train.objectives.tsp import (
    TSPHybrid,
    TSPLocal,
    TSPMargin,
    gold_order,
    path_adjacency,
)


def brute_force_augmented(A: np.ndarray, gold: list[int], margin: float) -> tuple[float, list[int]]:
    """max over every permutation of sum A'[pi_t, pi_t+1], with A' = A + margin * (1 - Y*) off the diagonal."""
    n = len(A)
    gold_edges = set(zip(gold, gold[1:]))
    best, arg = -np.inf, None
    for perm in itertools.permutations(range(n)):
        v = sum(A[i, j] + (0.0 if (i, j) in gold_edges else margin) for i, j in zip(perm, perm[1:]))
        if v > best + 1e-12:
            best, arg = v, list(perm)
    return best, arg


def test_gold_order_sorts_by_label_and_keeps_the_incoming_order_for_ties() -> None:
    labels = torch.tensor([[0.0, 2.0, 0.0, 1.0, 2.0]])
    assert gold_order(labels).tolist() == [[1, 4, 3, 0, 2]]
    Y = path_adjacency(gold_order(labels), 5)
    assert Y.sum() == 4 and Y[0, 1, 4] == Y[0, 4, 3] == Y[0, 3, 0] == Y[0, 0, 2] == 1


def test_local_loss_is_the_mean_next_item_cross_entropy_with_the_diagonal_masked() -> None:
    torch.manual_seed(0)
    A = torch.randn(2, 5, 5)
    labels = torch.tensor([[0.0, 1.0, 0.0, 3.0, 2.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    out = TSPLocal()(A, labels)
    expected = []
    for g in range(2):
        order = sorted(range(5), key=lambda i: (-labels[g, i].item(), i))
        terms = []
        for a, b in zip(order, order[1:]):
            row = A[g, a].clone()
            row[a] = -1e4
            terms.append(-F.log_softmax(row, 0)[b])
        expected.append(torch.stack(terms).mean())
    torch.testing.assert_close(out.loss, torch.stack(expected).mean())
    w = torch.tensor([1.0, 3.0])
    torch.testing.assert_close(TSPLocal()(A, labels, w).loss, (expected[0] + 3 * expected[1]) / 4)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_loss_augmented_decoding_and_the_margin_loss_equal_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    for trial in range(5):
        A = rng.normal(size=(n, n))
        labels = torch.tensor(rng.integers(0, 3, size=(1, n)).astype(np.float32))
        gold = gold_order(labels)[0].tolist()
        margin = [0.0, 0.5, 1.0, 2.0, 1.0][trial]
        best, _ = brute_force_augmented(A, gold, margin)
        gold_value = sum(A[i, j] for i, j in zip(gold, gold[1:]))
        obj = TSPMargin(margin=margin, decoder="held_karp")
        out = obj(torch.tensor(A[None], dtype=torch.float32), labels)
        assert out.loss.item() >= 0
        assert out.loss.item() == pytest.approx((best - gold_value) / n, abs=1e-5)
        # milp decodes the same optimum
        milp = TSPMargin(margin=margin, decoder="milp")(torch.tensor(A[None], dtype=torch.float32), labels)
        assert milp.loss.item() == pytest.approx(out.loss.item(), abs=1e-5)


def test_margin_loss_is_zero_exactly_when_gold_wins_by_the_margin() -> None:
    n = 6
    labels = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    A = torch.zeros(1, n, n)
    for i in range(n - 1):
        A[0, i, i + 1] = 1.0  # gold edges score 1, the rest 0: gold wins every edge by exactly 1
    out = TSPMargin(margin=1.0)(A, labels)
    assert out.loss.item() == 0.0 and out.logs["gold_wins"] == 1.0
    # a smaller lead than the margin gives a positive loss, and a gradient (Y^ - Y*) / n
    A.requires_grad_(True)
    out = TSPMargin(margin=1.5)(A, labels)
    assert out.loss.item() > 0
    out.loss.backward()
    grad = A.grad[0]
    assert grad.sum().item() == pytest.approx(0.0, abs=1e-6)
    assert set(np.round(grad.numpy().ravel() * n, 6)) <= {-1.0, 0.0, 1.0}


def test_margin_loss_is_never_negative_on_random_scores_and_gradient_matches_finite_differences() -> None:
    torch.manual_seed(1)
    A = torch.randn(3, 7, 7, dtype=torch.float32, requires_grad=True)
    labels = torch.tensor([[1.0, 0, 0, 2, 0, 0, 1], [0.0] * 6 + [1.0], [3.0, 2, 1, 0, 0, 0, 0]])
    out = TSPMargin()(A, labels)
    assert out.loss.item() >= 0 and out.logs["exact_decode"] == 1.0
    out.loss.backward()
    # the hinge is piecewise linear: a tiny step along the gradient changes it by |grad|^2 * eps
    eps = 1e-3
    with torch.no_grad():
        moved = TSPMargin()(A - eps * A.grad, labels).loss.item()
    assert moved == pytest.approx(out.loss.item() - eps * float((A.grad ** 2).sum()), abs=1e-5)


def test_hybrid_alternates_and_flips_parity_every_epoch() -> None:
    obj = build_objective({"name": "tsp_hybrid", "margin": 0.5})
    assert isinstance(obj, TSPHybrid)
    seen = []
    A = torch.randn(1, 4, 4)
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    for epoch, steps in ((0, range(4)), (1, range(4, 8))):
        for step in steps:
            obj.at_step(step, epoch)
            seen.append(obj(A, labels).logs["global"])
    assert seen == [0, 1, 0, 1, 1, 0, 1, 0]


def test_objective_settings_and_shapes_are_checked() -> None:
    with pytest.raises(ConfigError, match="margin"):
        build_objective({"name": "tsp_margin", "margin": -1})
    with pytest.raises(ConfigError, match="decoder"):
        build_objective({"name": "tsp_margin", "decoder": "gurobi"})
    with pytest.raises(ValueError, match=r"pairwise scores \[groups, n, n\]"):
        TSPLocal()(torch.randn(2, 5), torch.zeros(2, 5))
    one = TSPLocal()(torch.randn(1, 1, 1, requires_grad=True), torch.ones(1, 1))
    assert one.loss.item() == 0.0


def test_local_loss_with_any_ties_is_the_expectation_over_tie_orders() -> None:
    import itertools

    import torch.nn.functional as F

    torch.manual_seed(0)
    for labels in ([2, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 0], [0, 0, 0, 0], [2, 1, 0]):
        n = len(labels)
        A = torch.randn(1, n, n)
        lab = torch.tensor([labels])
        logits = A[0].masked_fill(torch.eye(n, dtype=torch.bool), -1e4)
        losses = []
        for perm in itertools.permutations(range(n)):  # every order consistent with the labels, equally likely
            if all(labels[perm[t]] >= labels[perm[t + 1]] for t in range(n - 1)):
                rows = logits[list(perm[:-1])]
                losses.append(F.cross_entropy(rows, torch.tensor(perm[1:])).item())
        expected = sum(losses) / len(losses)
        got = TSPLocal(ties="any")(A, lab).loss.item()
        assert abs(got - expected) < 1e-5, (labels, got, expected)
    # without ties both settings agree
    A = torch.randn(2, 4, 4)
    lab = torch.tensor([[3, 2, 1, 0], [0, 1, 3, 2]])
    torch.testing.assert_close(TSPLocal(ties="any")(A, lab).loss, TSPLocal()(A, lab).loss)
