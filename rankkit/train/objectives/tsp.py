"""TSPRank's objectives over pairwise scores ``A`` ``[G, n, n]`` (``A[g, i, j]``: "i right before j").

TSPRank (Li, Ziser, Xie, Cohen and Ma, KDD 2025, arXiv 2411.12064). The gold path of a
group is its candidates sorted by label, best first, ties kept in the incoming (first
stage) order, so a list with one relevant document still has one gold path.

- ``tsp_local``: the local loss, a cross-entropy per gold position: row ``A[pi_t, :]``
  (the diagonal masked) against the gold next item ``pi_{t+1}``, averaged over the
  ``n - 1`` positions. The paper's code passes the gold rank vector as class weights,
  which METHODS.md flags as a quirk; rankkit uses the plain mean (documented choice).
  With ``ties: any`` (rankkit's option, for graded or binary relevance where most
  candidates tie) the loss is its expectation over a uniformly random order within each
  label: row ``i`` of a label shared by ``m`` candidates targets each other one with
  ``1/m`` and each candidate of the next lower label with ``1/(m |next|)`` (a lowest-label
  row: the others of its label, weighted ``(m-1)/m``), so the first stage's order among
  non-relevant documents is no longer imitated.
- ``tsp_margin``: the global structured max-margin loss with loss-augmented decoding:
  ``A' = A + margin * (1 - Y*)`` off the diagonal, ``Y^ = argmax_path A'`` (exact:
  :func:`rankkit.rerank.tsp.decode`), ``L = (<Y^, A'> - <Y*, A'>) / n``. The loss is
  >= 0 and exactly 0 when the gold path beats every other path by its Hamming margin.
  When the decoder is not exact (large n, or a time limit) a worse-than-gold decode
  counts as 0 (the gold path is itself a candidate of the max).
- ``tsp_hybrid``: the released models' schedule: local and global batches alternate,
  the parity flipping every epoch (``at_step``); ``ties`` applies to its local batches.

Weights are per group ``[G]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from rankkit.config import NonNegativeFloat, PositiveFloat, validate_fields
from rankkit.train.objectives.base import Objective, ObjectiveOutput, weighted_mean

if TYPE_CHECKING:
    import torch

_NEG = -1e4  # masked logit (finite, so 0 * log_softmax stays 0)


def gold_order(labels: torch.Tensor) -> torch.Tensor:
    """``[G, n]`` candidate indices sorted by label (best first), ties in the incoming order."""
    import torch

    return torch.sort(-labels.float(), dim=1, stable=True).indices


def path_adjacency(order: torch.Tensor, n: int) -> torch.Tensor:
    """``[G, n, n]`` 0/1 matrix with ``Y[g, pi_t, pi_{t+1}] = 1`` for the paths ``order`` ``[G, n]``."""
    import torch

    G = order.shape[0]
    Y = torch.zeros(G, n, n, device=order.device)
    if n > 1:
        g = torch.arange(G, device=order.device).unsqueeze(1).expand(G, n - 1)
        Y[g, order[:, :-1], order[:, 1:]] = 1.0
    return Y


def _check(scores: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if scores.dim() != 3 or scores.shape[1:] != (labels.shape[1], labels.shape[1]):
        raise ValueError(f"objective {name} needs pairwise scores [groups, n, n] (a pairwise TSPRank head), "
                         f"got shape {list(scores.shape)} for labels {list(labels.shape)}")


def tie_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ties: any`` next-item targets ``[G, n, n]`` and row weights ``[G, n]`` (see the module docstring)."""
    import torch

    lab = labels.float()
    same = (lab[:, :, None] == lab[:, None, :]) & ~torch.eye(lab.shape[1], dtype=torch.bool, device=lab.device)
    m = same.sum(2).float() + 1.0  # candidates sharing row i's label, i included
    lower = lab[:, None, :] < lab[:, :, None]  # [g, i, j]: j's label below i's
    below = torch.where(lower, lab[:, None, :], torch.full_like(lab[:, None, :], -float("inf"))).amax(2)
    nxt = lower & (lab[:, None, :] == below[:, :, None])  # the candidates of the next lower label
    has_next = nxt.any(2)
    count = nxt.sum(2).clamp(min=1).float()
    q = torch.where(has_next[:, :, None], same / m[:, :, None] + nxt / (m * count)[:, :, None],
                    same / (m - 1).clamp(min=1)[:, :, None])
    w = torch.where(has_next, torch.ones_like(m), (m - 1) / m)
    return q, w


@dataclass
class TSPLocal(Objective):
    """TSPRank's local next-item cross-entropy (see the module docstring); ``ties``: ``first_stage`` or ``any``."""

    ties: Literal["first_stage", "any"] = "first_stage"

    name: ClassVar[str] = "tsp_local"
    matrix: ClassVar[bool] = True

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        import torch
        import torch.nn.functional as F

        _check(scores, labels, self.name)
        G, n = labels.shape
        if n < 2:
            return ObjectiveOutput(scores.sum() * 0.0, {"next_accuracy": 1.0})
        eye = torch.eye(n, dtype=torch.bool, device=scores.device)
        logits = scores.float().masked_fill(eye, _NEG)
        if self.ties == "any":
            q, w = tie_targets(labels.to(scores.device))
            ce = -(q * F.log_softmax(logits, dim=2)).sum(2)  # [G, n]
            per_group = (w * ce).sum(1) / w.sum(1).clamp(min=1e-12)
            accuracy = float((q.gather(2, logits.argmax(2, keepdim=True)).squeeze(2) > 0)[w > 0].float().mean())
            return ObjectiveOutput(weighted_mean(per_group, weights), {"next_accuracy": accuracy})
        order = gold_order(labels).to(scores.device)
        rows = logits.gather(1, order[:, :-1, None].expand(G, n - 1, n))  # [G, n-1, n]
        targets = order[:, 1:]
        ce = F.cross_entropy(rows.reshape(-1, n), targets.reshape(-1), reduction="none").view(G, n - 1).mean(1)
        accuracy = float((rows.argmax(-1) == targets).float().mean())
        return ObjectiveOutput(weighted_mean(ce, weights), {"next_accuracy": accuracy})


@dataclass
class TSPMargin(Objective):
    """TSPRank's structured max-margin loss with loss-augmented decoding (see the module docstring).

    ``margin`` (>= 0) scales the Hamming augmentation; ``decoder`` is the path solver of the
    augmented argmax (``auto``: exact DP up to 13 items, exact MILP on HiGHS up to 60, then
    heuristics: the loss is then no longer a true structured hinge) with ``time_limit``
    seconds per group.
    """

    margin: NonNegativeFloat = 1.0
    decoder: Literal["auto", "held_karp", "milp", "heuristic", "lkh"] = "auto"
    time_limit: PositiveFloat = 10.0

    name: ClassVar[str] = "tsp_margin"
    matrix: ClassVar[bool] = True

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")

    def margin_loss(self, scores: torch.Tensor, labels: torch.Tensor,
                    weights: torch.Tensor | None) -> ObjectiveOutput:
        """The structured hinge of every group, weighted; logs the share of exact decodes and of gold wins."""
        import torch

        from rankkit.rerank.tsp import decode

        _check(scores, labels, self.name)
        G, n = labels.shape
        A = scores.float()
        Y = path_adjacency(gold_order(labels).to(A.device), n)
        off = 1.0 - torch.eye(n, device=A.device)
        aug = A + self.margin * (1.0 - Y) * off
        found = aug.detach().double().cpu().numpy()
        orders, exact = [], 0
        for g in range(G):
            res = decode(found[g], method=self.decoder, time_limit=self.time_limit)
            orders.append(res.order)
            exact += bool(res.optimal)
        Yhat = path_adjacency(torch.tensor(orders, device=A.device, dtype=torch.long), n)
        per_group = ((Yhat - Y) * aug * off).sum((1, 2)) / n
        per_group = per_group.clamp(min=0.0)  # an inexact decode worse than gold: the max is gold's own value
        hit = float((per_group <= 1e-6).float().mean())  # no path beats gold by more than its Hamming margin
        return ObjectiveOutput(weighted_mean(per_group, weights), {"exact_decode": exact / G, "gold_wins": hit})

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        return self.margin_loss(scores, labels, weights)


@dataclass
class TSPHybrid(TSPMargin):
    """Local and global (max-margin) batches alternating, the parity flipping each epoch (see the module docstring)."""

    ties: Literal["first_stage", "any"] = "first_stage"

    name: ClassVar[str] = "tsp_hybrid"

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")
        self._global = False

    def at_step(self, step: int, epoch: int) -> None:
        """Global loss on steps where ``step + epoch`` is odd, local otherwise."""
        self._global = (step + epoch) % 2 == 1

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        if self._global:
            out = self.margin_loss(scores, labels, weights)
        else:
            out = TSPLocal(ties=self.ties)(scores, labels, weights)
        out.logs["global"] = float(self._global)
        return out
