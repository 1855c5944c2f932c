"""Plackett-Luce policy gradient (rankkit.train.objectives.pgrank): exact checks against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from rankkit.errors import ConfigError
from rankkit.train.objectives import build_objective
from rankkit.train.objectives.pgrank import (
    PlackettLucePG,
    gumbel_rankings,
    pl_log_prob,
    utility,
)


def _perms(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.permutations(range(n))))


def _brute_log_prob(s: list[float], perm: tuple[int, ...]) -> float:
    total = 0.0
    for i in range(len(perm)):
        rest = [s[j] for j in perm[i:]]
        total += s[perm[i]] - math.log(sum(math.exp(x) for x in rest))
    return total


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_pl_probabilities_over_all_permutations_sum_to_one(n: int) -> None:
    torch.manual_seed(n)
    scores = torch.randn(2, n, dtype=torch.float64) * 2
    perms = _perms(n)
    logp = pl_log_prob(scores, perms.unsqueeze(0).expand(2, -1, -1))
    assert torch.allclose(logp.exp().sum(1), torch.ones(2, dtype=torch.float64), atol=1e-12)
    for row in range(2):
        for idx in (0, len(perms) - 1):
            assert logp[row, idx].item() == pytest.approx(_brute_log_prob(scores[row].tolist(),
                                                                         tuple(perms[idx].tolist())), abs=1e-12)


def test_truncated_log_prob_is_the_probability_of_the_prefix() -> None:
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.5]], dtype=torch.float64)
    perms = _perms(4)
    full = pl_log_prob(scores, perms.unsqueeze(0)).exp()[0]
    top2 = pl_log_prob(scores, perms.unsqueeze(0), depth=2).exp()[0]
    for i, p in enumerate(perms.tolist()):  # P(prefix) = sum of the full probabilities sharing it
        same = [j for j, q in enumerate(perms.tolist()) if q[:2] == p[:2]]
        assert top2[i].item() == pytest.approx(float(full[same].sum()), abs=1e-12)


@pytest.mark.parametrize("n", [3, 4])
def test_gumbel_sort_frequencies_match_the_plackett_luce_distribution(n: int) -> None:
    from scipy.stats import chisquare

    scores = torch.tensor([[1.0, 0.2, -0.5, 0.7][:n]], dtype=torch.float64)
    draws = 40_000
    gen = torch.Generator().manual_seed(1234)
    rankings = gumbel_rankings(scores, draws, generator=gen)[0]
    perms = _perms(n)
    index = {tuple(p): i for i, p in enumerate(perms.tolist())}
    observed = np.bincount([index[tuple(r)] for r in rankings.tolist()], minlength=len(perms))
    expected = pl_log_prob(scores, perms.unsqueeze(0)).exp()[0].numpy() * draws
    assert chisquare(observed, expected).pvalue > 0.01


def _exact_gradient(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Gradient of the expected nDCG@k under the PL policy, by enumerating every permutation."""
    s = scores.clone().requires_grad_(True)
    perms = _perms(s.shape[1]).unsqueeze(0)
    probs = pl_log_prob(s, perms).exp()
    rewards = utility(labels.unsqueeze(1).expand(-1, perms.shape[1], -1).gather(2, perms), labels, "ndcg", k)
    (probs * rewards).sum().backward()
    return s.grad[0]


def _estimates(objective: PlackettLucePG, scores: torch.Tensor, labels: torch.Tensor, reps: int) -> torch.Tensor:
    """One gradient estimate (of -loss, i.e. of the expected utility) per replicated group: ``[reps, n]``."""
    s = scores.expand(reps, -1).clone().requires_grad_(True)
    out = objective(s, labels.expand(reps, -1))
    (out.loss * reps).backward()  # the loss averages over groups: undo it to get per-group estimates
    return -s.grad.double()


@pytest.mark.parametrize("truncate,k", [(False, 10), (True, 2)])
def test_gradient_estimator_is_unbiased_and_the_baseline_lowers_its_variance(truncate: bool, k: int) -> None:
    torch.manual_seed(0)
    scores = torch.tensor([[0.4, -0.3, 1.1, 0.0]], dtype=torch.float64)
    labels = torch.tensor([[2.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    exact = _exact_gradient(scores, labels, k)
    reps = 20_000
    variances = {}
    for baseline in ("loo", "none"):
        obj = PlackettLucePG(samples=4, baseline=baseline, k=k, truncate=truncate, log_variance=False)
        est = _estimates(obj, scores.float(), labels.float(), reps)
        mean, se = est.mean(0), est.std(0) / math.sqrt(reps)
        assert torch.all((mean - exact).abs() <= 4 * se + 1e-4), (baseline, mean, exact, se)
        variances[baseline] = float(est.var(0).sum())
    assert variances["loo"] < variances["none"]


def test_logged_variance_is_lower_with_the_baseline() -> None:
    torch.manual_seed(3)
    obj = PlackettLucePG(samples=32)
    labels = torch.zeros(8, 20)
    labels[:, 3] = 1
    out = obj(torch.randn(8, 20), labels)
    assert 0 < out.logs["grad_var"] < out.logs["grad_var_no_baseline"]
    assert 0 <= out.logs["reward"] <= 1 and 0 <= out.logs["reward_greedy"] <= 1


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_a_group_with_constant_reward_gives_exactly_zero_gradient(fill: float) -> None:
    s = torch.randn(3, 7, requires_grad=True)
    labels = torch.full((3, 7), fill)
    labels[1, 2] = 1.0  # one ordinary group beside the constant ones
    labels[1, 3] = 0.0
    PlackettLucePG(samples=8, standardize=True)(s, labels).loss.backward()
    assert torch.equal(s.grad[0], torch.zeros(7)) and torch.equal(s.grad[2], torch.zeros(7))
    assert s.grad[1].abs().sum() > 0


@pytest.mark.parametrize("name", ["ndcg", "dcg", "mrr", "recall"])
def test_reward_equals_ranx_on_the_same_ranking(name: str) -> None:
    from ranx import Qrels, Run, evaluate

    rng = np.random.default_rng(5)
    G, n, k = 6, 15, 10
    labels = torch.tensor(rng.choice([0, 0, 0, 1, 2, 3], size=(G, n)), dtype=torch.float64)
    labels[0] = 0  # a query without relevant candidates
    labels[0, 14] = 1
    order = torch.tensor(np.stack([rng.permutation(n) for _ in range(G)]))
    ours = utility(labels.gather(1, order), labels, name, k)
    qrels = {f"q{g}": {f"d{i}": int(labels[g, i]) for i in range(n) if labels[g, i] > 0} for g in range(G)}
    run = {f"q{g}": {f"d{int(d)}": float(n - r) for r, d in enumerate(order[g])} for g in range(G)}
    theirs = evaluate(Qrels(qrels), Run(run), f"{name}@{k}", return_mean=False, make_comparable=True)
    assert np.allclose(ours.numpy(), np.asarray(theirs), atol=1e-12, rtol=0)


def test_k_beyond_the_candidates_means_the_whole_list() -> None:
    labels = torch.tensor([[0.0, 1.0, 2.0, 0.0]])
    order = torch.tensor([[3, 1, 0, 2]])
    ranked = labels.gather(1, order)
    assert torch.equal(utility(ranked, labels, "ndcg", 50), utility(ranked, labels, "ndcg", 4))


def test_bad_settings_and_empty_groups_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="samples must be >= 2 with the leave-one-out baseline"):
        build_objective({"name": "plackett_luce_pg", "samples": 1})
    assert build_objective({"name": "plackett_luce_pg", "samples": 1, "baseline": "none"}).samples == 1
    with pytest.raises(ConfigError, match=r"utility must be one of ndcg, dcg, mrr, recall, got 'ndgc'"):
        build_objective({"name": "pgrank", "utility": "ndgc"})
    with pytest.raises(ConfigError, match=r"unknown setting|sample_count"):
        build_objective({"name": "pgrank", "sample_count": 4})
    with pytest.raises(ValueError, match="at least one candidate"):
        PlackettLucePG()(torch.zeros(2, 0), torch.zeros(2, 0))
