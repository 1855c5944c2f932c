"""What every training objective is: an object with its own settings that turns scores into a loss.

An objective is a dataclass (its fields are its settings, read from YAML as
``objective: {name: margin, margin: 0.5}``) with ``__call__(scores, labels, weights,
in_batch=None) -> ObjectiveOutput``:

- ``scores`` and ``labels`` are ``[G, n]``: G groups of n candidates, label > 0 relevant;
- ``weights`` are per-sample curriculum weights, ``[G, n]`` for a pointwise objective and
  ``[G]`` (per group) otherwise, or ``None``;
- ``in_batch`` is ``[G, G * n]``: each query against every document of the batch, flattened
  group by group (so group g's own candidates are columns ``g*n .. g*n+n-1``); only
  scorers that score queries and documents separately (bi-encoders) can provide it, and
  only objectives with ``uses_in_batch`` read it.

Objectives with ``matrix`` (TSPRank's) take pairwise scores ``[G, n, n]`` instead, and
:meth:`Objective.at_step` lets an objective follow a schedule (TSPRank's hybrid).

The output holds the loss and a dict of values the training loop logs. Weighted losses
are ``sum(w * loss) / sum(w)``, so the loss scale does not depend on the weights' scale.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # torch is imported where it is used, so reading a config does not load it
    import torch


@dataclass
class ObjectiveOutput:
    """A loss to minimise and the values to log alongside it (floats)."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Objective(abc.ABC):
    """Base of every objective (see the module docstring); subclasses are dataclasses."""

    name: ClassVar[str] = ""
    pointwise: ClassVar[bool] = False
    uses_in_batch: ClassVar[bool] = False
    #: scores are pairwise matrices ``[G, n, n]`` (TSPRank's heads) instead of ``[G, n]``
    matrix: ClassVar[bool] = False

    def at_step(self, step: int, epoch: int) -> None:
        """Called by the loop before each batch with the optimiser steps done and the epoch (schedules)."""

    @abc.abstractmethod
    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 in_batch: torch.Tensor | None = None) -> ObjectiveOutput:
        """The loss of a batch of groups (shapes in the module docstring)."""


def weighted_mean(loss: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``sum(w * loss) / sum(w)``, or the plain mean without weights."""
    if weights is None:
        return loss.mean()
    weights = weights.to(loss.dtype)
    return (loss * weights).sum() / weights.sum().clamp(min=1e-12)
