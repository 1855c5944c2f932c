"""Reranker training objectives over groups of scores, each with optional per-sample weights.

Every objective takes ``scores`` and ``labels`` of shape ``[G, n]`` (G groups of n
candidates; label > 0 means relevant) and optional ``weights``:

- ``bce`` (pointwise): binary cross-entropy of each score (a logit) against
  ``label > 0``; weights ``[G, n]`` weight each (query, document) sample.
- ``ranknet`` (pairwise): ``log(1 + exp(-(s_i - s_j)))`` over every pair with
  ``label_i > label_j`` in a group; weights ``[G]`` weight each group's pairs.
- ``margin`` (pairwise): ``max(0, margin - (s_i - s_j))`` over the same pairs.
- ``softmax`` (listwise): cross-entropy between softmax(scores) and the label
  distribution of the group (one positive: ``-log softmax(s)[pos]``); weights ``[G]``.

Weighted losses are ``sum(w * loss) / sum(w)`` so the loss scale does not depend on
the weights' scale. :func:`get_objective` resolves a name (with aliases) and raises
:class:`ConfigError` with a suggestion for an unknown one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rankkit.errors import ConfigError

Objective = Callable[..., torch.Tensor]


def _weighted_mean(loss: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``sum(w * loss) / sum(w)``, or the plain mean without weights."""
    if weights is None:
        return loss.mean()
    weights = weights.to(loss.dtype)
    return (loss * weights).sum() / weights.sum().clamp(min=1e-12)


def bce(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Pointwise binary cross-entropy on logits; ``weights`` has the shape of ``scores``."""
    loss = F.binary_cross_entropy_with_logits(scores.float(), (labels > 0).float(), reduction="none")
    return _weighted_mean(loss, weights)


def _pairs(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Score differences ``s_i - s_j`` ``[G, n, n]`` and the mask of pairs with ``label_i > label_j``."""
    diff = scores.float().unsqueeze(2) - scores.float().unsqueeze(1)
    mask = labels.unsqueeze(2) > labels.unsqueeze(1)
    return diff, mask


def _pairwise(loss_of_diff: Callable[[torch.Tensor], torch.Tensor], scores: torch.Tensor, labels: torch.Tensor,
              weights: torch.Tensor | None) -> torch.Tensor:
    diff, mask = _pairs(scores, labels)
    if not mask.any():
        raise ValueError("pairwise objective: no group has a pair with different labels")
    per_pair = loss_of_diff(diff)
    w = mask.float() if weights is None else mask.float() * weights.float().view(-1, 1, 1)
    return (per_pair * w).sum() / w.sum().clamp(min=1e-12)


def ranknet(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """RankNet: logistic loss on each ordered pair's score difference; ``weights`` per group ``[G]``."""
    return _pairwise(lambda d: F.softplus(-d), scores, labels, weights)


def margin(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
           margin: float = 1.0) -> torch.Tensor:
    """Margin (hinge) loss ``max(0, margin - (s_i - s_j))`` on ordered pairs; ``weights`` per group."""
    return _pairwise(lambda d: F.relu(margin - d), scores, labels, weights)


def softmax(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Listwise softmax cross-entropy against the group's label distribution; ``weights`` per group."""
    target = labels.float().clamp(min=0)
    total = target.sum(1, keepdim=True)
    if (total <= 0).any():
        raise ValueError("listwise softmax objective: a group has no relevant document")
    loss = -(target / total * torch.log_softmax(scores.float(), dim=1)).sum(1)
    return _weighted_mean(loss, weights)


OBJECTIVES: dict[str, Objective] = {"bce": bce, "ranknet": ranknet, "margin": margin, "softmax": softmax}
ALIASES = {"pointwise": "bce", "pairwise": "ranknet", "hinge": "margin", "listwise": "softmax",
           "listnet": "softmax", "ce": "softmax"}
POINTWISE = frozenset({"bce"})


def canonical_objective(name: str) -> str:
    """The canonical name of an objective (aliases resolved); unknown names raise :class:`ConfigError`."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in OBJECTIVES:
        allowed = sorted({*OBJECTIVES, *ALIASES})
        hint = difflib.get_close_matches(name.lower(), allowed, n=1, cutoff=0.5)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"unknown objective {name!r}{suggestion}; choose one of {', '.join(allowed)}")
    return key


def get_objective(name: str) -> Objective:
    """The objective function for ``name`` (see :func:`canonical_objective`)."""
    return OBJECTIVES[canonical_objective(name)]
