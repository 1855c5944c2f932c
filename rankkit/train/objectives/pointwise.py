"""Pointwise binary cross-entropy (the monoBERT objective: Nogueira & Cho, 2019, "Passage Re-ranking with BERT").

Each (query, document) score is a logit for "relevant" (label > 0). Training groups hold
one positive and n-1 negatives, so unweighted BCE sees n-1 negatives per positive and can
settle on scoring everything low: in ``eval/results/ce_matrix.md`` it collapsed in 2 of 3
seeds. ``pos_weight: balanced`` (the default) weights each batch's positives by
``#negatives / #positives``, so both classes count equally; a number sets the weight;
``null`` is plain BCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field

from rankkit.config import PositiveFloat, validate_fields
from rankkit.train.objectives.base import Objective, ObjectiveOutput, weighted_mean

if TYPE_CHECKING:
    import torch


@dataclass
class BCE(Objective):
    """Pointwise BCE on logits with class balancing (see the module docstring); weights ``[G, n]``."""

    pos_weight: Annotated[Literal["balanced"] | PositiveFloat | None,
                          Field(description="'balanced', a number > 0 or null")] = "balanced"

    name: ClassVar[str] = "bce"
    pointwise: ClassVar[bool] = True

    def __post_init__(self) -> None:
        validate_fields(self, f"objective ({self.name})")

    def class_weights(self, target: torch.Tensor) -> torch.Tensor:
        """Per-sample class weights: ``pos_weight`` for positives, 1 for negatives."""
        import torch

        if self.pos_weight is None:
            return torch.ones_like(target)
        if self.pos_weight == "balanced":
            pos = target.sum()
            w = (target.numel() - pos) / pos.clamp(min=1.0)
        else:
            w = torch.tensor(float(self.pos_weight), dtype=target.dtype, device=target.device)
        return torch.where(target > 0, w, torch.ones_like(target))

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        import torch
        import torch.nn.functional as F

        target = (labels > 0).float()
        loss = F.binary_cross_entropy_with_logits(scores.float(), target, reduction="none")
        w = self.class_weights(target)
        if weights is not None:
            w = w * weights.float()
        probs = torch.sigmoid(scores.detach().float())
        logs = {"pos_prob": float(probs[target > 0].mean()) if target.any() else 0.0,
                "neg_prob": float(probs[target == 0].mean()) if (target == 0).any() else 0.0}
        return ObjectiveOutput(weighted_mean(loss, w), logs)
