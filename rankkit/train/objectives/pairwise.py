"""Pairwise objectives over every ordered pair ``label_i > label_j`` of a group; weights per group ``[G]``.

- ``ranknet``: RankNet (Burges et al., ICML 2005, "Learning to Rank using Gradient Descent"),
  the logistic loss ``log(1 + exp(-(s_i - s_j)))``;
- ``margin``: the pairwise hinge loss ``max(0, margin - (s_i - s_j))`` of Ranking SVM
  (Joachims, KDD 2002, "Optimizing Search Engines using Clickthrough Data").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rankkit.config import NonNegativeFloat, validate_fields
from rankkit.train.objectives.base import Objective, ObjectiveOutput

if TYPE_CHECKING:
    import torch


def pairwise_loss(loss_of_diff: Callable[[torch.Tensor], torch.Tensor], scores: torch.Tensor, labels: torch.Tensor,
                  weights: torch.Tensor | None) -> ObjectiveOutput:
    """Mean of ``loss_of_diff(s_i - s_j)`` over ordered pairs (weighted per group); logs the pair accuracy."""
    diff = scores.float().unsqueeze(2) - scores.float().unsqueeze(1)
    mask = labels.unsqueeze(2) > labels.unsqueeze(1)
    if not mask.any():
        raise ValueError("pairwise objective: no group has a pair with different labels")
    w = mask.float() if weights is None else mask.float() * weights.float().view(-1, 1, 1)
    loss = (loss_of_diff(diff) * w).sum() / w.sum().clamp(min=1e-12)
    accuracy = float((diff[mask] > 0).float().mean())
    return ObjectiveOutput(loss, {"pair_accuracy": accuracy})


@dataclass
class RankNet(Objective):
    """RankNet logistic loss on ordered pairs (see the module docstring)."""

    name: ClassVar[str] = "ranknet"

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        import torch.nn.functional as F

        return pairwise_loss(lambda d: F.softplus(-d), scores, labels, weights)


@dataclass
class Margin(Objective):
    """Pairwise hinge loss with a settable ``margin`` (see the module docstring)."""

    margin: NonNegativeFloat = 1.0

    name: ClassVar[str] = "margin"

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        import torch.nn.functional as F

        return pairwise_loss(lambda d: F.relu(self.margin - d), scores, labels, weights)
