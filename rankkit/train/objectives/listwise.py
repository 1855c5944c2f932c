"""Listwise softmax cross-entropy (ListNet top-one: Cao et al., ICML 2007, "Learning to Rank: From Pairwise
Approach to Listwise Approach").

The loss is the cross-entropy between the softmax of a group's scores (divided by
``temperature``) and the group's label distribution; with one positive it is
``-log softmax(s / T)[pos]``. Weights are per group ``[G]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rankkit.config import PositiveFloat, validate_fields
from rankkit.train.objectives.base import Objective, ObjectiveOutput, weighted_mean

if TYPE_CHECKING:
    import torch


def listwise_ce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy ``[G]`` between softmax(scores) and the normalised (clamped >= 0) labels."""
    import torch

    target = labels.float().clamp(min=0)
    total = target.sum(1, keepdim=True)
    if (total <= 0).any():
        raise ValueError("listwise objective: a group has no relevant document")
    return -(target / total * torch.log_softmax(scores.float(), dim=1)).sum(1)


@dataclass
class Softmax(Objective):
    """Listwise softmax cross-entropy with an optional score ``temperature`` (see the module docstring)."""

    temperature: PositiveFloat = 1.0

    name: ClassVar[str] = "softmax"

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        loss = listwise_ce(scores.float() / self.temperature, labels)
        top1 = float((scores.argmax(1) == labels.argmax(1)).float().mean())
        return ObjectiveOutput(weighted_mean(loss, weights), {"top1": top1})
