"""InfoNCE with in-batch and hard negatives (van den Oord et al., 2018, "Representation Learning with
Contrastive Predictive Coding"; as used for dense retrieval by DPR, Karpukhin et al., EMNLP 2020).

For query g the candidates are every document of the batch: its own group (its positive
and the first stage's hard negatives) plus the other groups' documents (in-batch
negatives). The loss is the cross-entropy of the softmax over those ``G * n`` scores
(divided by ``temperature``) against the query's own positives. A document of another
group known to be relevant to query g (another group of the same query) is masked out by
the scorer, so it is never pushed down as a negative. Without in-batch scores (a
cross-encoder scores pairs only) or with ``in_batch: false`` the softmax covers the own
group only, which is the listwise softmax objective.

Bi-encoder scores are already ``cos / T_model`` (the scorer's similarity temperature), so
``temperature`` here is an extra divisor that stays at 1 unless the scorer's scores are raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rankkit.config import PositiveFloat, validate_fields
from rankkit.train.objectives.base import Objective, ObjectiveOutput, weighted_mean
from rankkit.train.objectives.listwise import listwise_ce

if TYPE_CHECKING:
    import torch


@dataclass
class InfoNCE(Objective):
    """In-batch plus hard-negative contrastive loss (see the module docstring); weights per group ``[G]``."""

    temperature: PositiveFloat = 1.0
    in_batch: bool = True

    name: ClassVar[str] = "infonce"
    uses_in_batch: ClassVar[bool] = True

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        import torch

        G, n = scores.shape
        if in_batch is None or not self.in_batch:
            logits, target = scores.float(), labels.float()
        else:
            if in_batch.shape != (G, G * n):
                raise ValueError(f"in-batch scores must have shape {(G, G * n)}, got {tuple(in_batch.shape)}")
            logits = in_batch.float()
            target = torch.zeros_like(logits)
            rows = torch.arange(G, device=logits.device)
            cols = rows.unsqueeze(1) * n + torch.arange(n, device=logits.device)
            target[rows.unsqueeze(1), cols] = labels.float()
        loss = listwise_ce(logits / self.temperature, target)
        top1 = float(target.gather(1, logits.argmax(1, keepdim=True)).gt(0).float().mean())
        return ObjectiveOutput(weighted_mean(loss, weights), {"top1": top1, "candidates": float(logits.shape[1])})
