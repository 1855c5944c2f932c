"""Plackett-Luce policy gradient on a ranking metric (Neural PG-Rank: Gao, Chang, Cardie, Brantley and
Joachims, 2023, "Policy-Gradient Training of Language Models for Ranking", arXiv 2310.04407).

The scorer's scores ``s / temperature`` over a group's candidates define a Plackett-Luce
policy over rankings, ``pi(r) = prod_i exp(s_{r_i}) / sum_{j >= i} exp(s_{r_j})``. Each step:

1. draws ``samples`` rankings per group at once by Gumbel-perturbed sorting (an exact PL
   sample: sort ``s / T + g`` with ``g ~ Gumbel(0, 1)`` i.i.d.);
2. computes each ranking's log-probability with a reverse cumulative logsumexp (one pass,
   no loop over positions or permutations); with ``truncate: true`` only the first ``k``
   positions enter it (the PL probability of the sampled top-k prefix, which is all a
   metric at k depends on: same expectation, lower variance);
3. scores each ranking with ``utility`` at ``k`` (``ndcg`` by default, as ranx and
   trec_eval compute it, linear gains, the ideal ranking taken over the group's labels;
   ``dcg``, ``mrr``, ``recall``), in torch against the group's graded labels;
4. REINFORCE: ``loss = -mean_k A_k log pi(r_k)`` with ``A_k = R_k - b_k``, the
   leave-one-out baseline ``b_k = mean_{j != k} R_j`` (``baseline: none`` for the
   ablation, ``A_k = R_k``), optionally standardised per group.

``k`` larger than a group's candidate count means the whole list (nDCG@k of n < k items
equals nDCG@n). A group whose rewards are all equal (no relevant candidate, or every one
relevant) has advantage exactly 0 under the baseline, so it contributes no gradient.

Logged per step: ``reward`` (mean sampled utility), ``reward_greedy`` (utility of the
deterministic ranking by score, the policy's mode), ``advantage`` (mean |A|), and, with
``log_variance: true``, the variance over samples of the per-sample gradient estimate
with respect to the scores (trace of the covariance, averaged over groups) with the
configured advantage (``grad_var``) and with the raw reward (``grad_var_no_baseline``).

Pitfall (METHODS.md): cosine scores in [-1, 1] give an almost uniform policy; the
bi-encoder's similarity temperature (``model.temperature``, learnable with
``model.learn_temperature``) or this objective's ``temperature`` sets the scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

from rankkit.config import PositiveFloat, PositiveInt, validate_fields
from rankkit.train.objectives.base import Objective, ObjectiveOutput

if TYPE_CHECKING:
    import torch

Utility = Literal["ndcg", "dcg", "mrr", "recall"]
UTILITIES = get_args(Utility)


def gumbel_rankings(scores: torch.Tensor, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``samples`` Plackett-Luce rankings per row of ``scores`` ``[G, n]``: indices ``[G, samples, n]``, best first."""
    import torch

    u = torch.rand((scores.shape[0], samples, scores.shape[1]), generator=generator, dtype=torch.float64,
                   device=scores.device)
    gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
    return torch.argsort(scores.detach().double().unsqueeze(1) + gumbel, dim=-1, descending=True)


def pl_log_prob(scores: torch.Tensor, rankings: torch.Tensor, depth: int | None = None) -> torch.Tensor:
    """Plackett-Luce log-probability ``[G, N]`` of ``rankings`` ``[G, N, n]`` under ``scores`` ``[G, n]``.

    ``depth`` keeps only the first ``depth`` factors (the probability of the top-``depth``
    prefix). Differentiable in ``scores``.
    """
    import torch

    ordered = scores.unsqueeze(1).expand(-1, rankings.shape[1], -1).gather(2, rankings)
    tail = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)  # logsumexp over positions j >= i
    terms = ordered - tail
    if depth is not None:
        terms = terms[..., :depth]
    return terms.sum(-1)


def utility(ranked_labels: torch.Tensor, labels: torch.Tensor, name: str, k: int) -> torch.Tensor:
    """``name``@``k`` of rankings given their labels in rank order ``[..., n]``; ``labels`` ``[G, n]`` for the ideal.

    ``ranked_labels`` has the group dimension first and any number of sample dimensions
    before the last; a label > 0 is relevant. nDCG uses linear gains (ranx, trec_eval)
    and is 0 for a group without a relevant label.
    """
    import torch

    if name not in UTILITIES:
        raise ValueError(f"unknown utility {name!r}; choose one of {', '.join(UTILITIES)}")
    n = ranked_labels.shape[-1]
    k = min(k, n)
    top = ranked_labels[..., :k].double()
    extra = (1,) * (ranked_labels.dim() - 2)
    if name in ("ndcg", "dcg"):
        discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=top.device))
        dcg = (top * discount).sum(-1)
        if name == "dcg":
            return dcg
        ideal = labels.double().sort(dim=-1, descending=True).values[..., :k]
        idcg = (ideal * discount).sum(-1).view(-1, *extra)
        return torch.where(idcg > 0, dcg / idcg.clamp(min=1e-300), torch.zeros_like(dcg))
    relevant = top > 0
    if name == "mrr":
        first = torch.where(relevant, torch.arange(1, k + 1, dtype=torch.float64, device=top.device), math.inf)
        return 1.0 / first.min(-1).values
    total = (labels > 0).sum(-1).double().view(-1, *extra)
    return torch.where(total > 0, relevant.sum(-1).double() / total.clamp(min=1), torch.zeros_like(total))


@dataclass
class PlackettLucePG(Objective):
    """REINFORCE on sampled Plackett-Luce rankings with a metric as reward (see the module docstring).

    Weights are per group ``[G]``.
    """

    samples: PositiveInt = 16
    utility: Utility = "ndcg"
    k: PositiveInt = 10
    truncate: bool = False
    baseline: Literal["loo", "none"] = "loo"
    standardize: bool = False
    temperature: PositiveFloat = 1.0
    log_variance: bool = True

    name: ClassVar[str] = "plackett_luce_pg"

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")
        if self.baseline == "loo" and self.samples < 2:
            raise ValueError(f"samples must be >= 2 with the leave-one-out baseline (got {self.samples}); "
                             "use baseline: none for a single sample")

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """Advantages ``[G, N]`` of rewards ``[G, N]`` (baseline, constant groups zeroed, standardisation)."""
        import torch

        if self.baseline == "none":
            adv = rewards
        else:
            n = rewards.shape[1]
            adv = rewards - (rewards.sum(1, keepdim=True) - rewards) / (n - 1)
            constant = rewards.amax(1, keepdim=True) == rewards.amin(1, keepdim=True)
            adv = torch.where(constant, torch.zeros_like(adv), adv)  # exactly 0, whatever the rounding
        if self.standardize and rewards.shape[1] > 1:
            adv = adv / (rewards.std(1, keepdim=True) + 1e-6)
        return adv

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        if scores.dim() != 2 or scores.shape[1] == 0:
            raise ValueError(f"objective ({self.name}): every group needs at least one candidate, got scores of "
                             f"shape {tuple(scores.shape)}")
        logits = scores.float() / self.temperature
        rankings = gumbel_rankings(logits, self.samples)
        labels = labels.to(logits.device)
        ranked = labels.unsqueeze(1).expand(-1, self.samples, -1).gather(2, rankings)
        rewards = utility(ranked, labels, self.utility, self.k)
        adv = self.advantages(rewards).to(logits.dtype)
        depth = min(self.k, logits.shape[1]) if self.truncate else None
        logp = pl_log_prob(logits, rankings, depth)
        per_group = -(adv.detach() * logp).mean(1)
        if weights is None:
            loss = per_group.mean()
        else:
            w = weights.to(per_group.dtype)
            loss = (per_group * w).sum() / w.sum().clamp(min=1e-12)
        greedy = labels.gather(1, logits.detach().argsort(1, descending=True))
        logs = {"reward": float(rewards.mean()), "advantage": float(adv.abs().mean()),
                "reward_greedy": float(utility(greedy, labels, self.utility, self.k).mean())}
        if self.log_variance:
            logs.update(self.gradient_variance(logits.detach(), rankings, rewards, adv.detach(), depth))
        return ObjectiveOutput(loss, logs)

    @staticmethod
    def gradient_variance(logits: torch.Tensor, rankings: torch.Tensor, rewards: torch.Tensor, adv: torch.Tensor,
                          depth: int | None) -> dict[str, float]:
        """Variance over samples of the per-sample gradient estimate w.r.t. the scores, with and without baseline."""
        import torch

        G, N, n = rankings.shape
        with torch.enable_grad():
            leaf = logits.unsqueeze(1).expand(G, N, n).reshape(G * N, n).clone().requires_grad_(True)
            logp = pl_log_prob(leaf, rankings.reshape(G * N, 1, n), depth)
            (grad,) = torch.autograd.grad(logp.sum(), leaf)
        grad = grad.view(G, N, n).double()

        def var(weight: torch.Tensor) -> float:
            est = weight.double().unsqueeze(-1) * grad  # [G, N, n]
            if N < 2:
                return 0.0
            return float(est.var(1, unbiased=True).sum(-1).mean())

        return {"grad_var": var(adv), "grad_var_no_baseline": var(rewards)}
