"""Difficulty-based training curricula for re-rankers.

Implements "Training Curricula for Open-Domain Answer Re-Ranking" (MacAvaney, Nardini,
Perego, Tonellotto, Goharian and Frieder, SIGIR 2020). A first-stage run gives each
(query, doc) pair a difficulty score D in [0, 1] (high = "looks relevant"):

* ``reciprank``: D = 1 / rank; a document absent from the query's run gets rank
  ``unretrieved_rank`` (1000 by default, so D = 0.001).
* ``normscore``: D = (s - min_q) / (max_q - min_q), the per-query min-max normalised score.
* ``kdescore``: D = F_q(s), the CDF of a Gaussian KDE over the query's run scores,
  F_q(s) = mean_i Phi((s - x_i) / h), with Scott's bandwidth h = std(x) * n^(-1/5).

Degenerate queries (all scores equal) get the neutral D = 0.5 for retrieved documents;
unretrieved documents get 0.0 under ``normscore`` and ``kdescore``. From D, each training
sample gets an "ease" weight w:

* pointwise: w = D for a relevant doc, w = 1 - D for a non-relevant one;
* pairwise: w = min over (positive i, negative j) of (D_i - D_j + 1) / 2, one per group;
  a group without both a positive and a negative gets w = 1;
* anti-curriculum uses 1 - w instead; eps = 1e-8 is then added to every weight.

Weights are annealed to 1 over the first m optimiser steps:
W = w * (1 - i/m) + i/m for step i < m, and W = 1 for i >= m (the plain objective).

Per-sample weighting (``weighting="sample"``, the default) multiplies each sample's
(or group's) loss by its own weight, as the paper describes. OpenNIR, the paper's code
base, instead multiplies the mean-reduced batch loss by the mean weight of the batch;
``weighting="batch"`` approximates this by giving every sample the batch-mean weight.
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import dataclass

from typing import TYPE_CHECKING, Annotated, Literal, get_args

import numpy as np
from pydantic import Field

from rankkit.config import validate_fields
from rankkit.errors import ConfigError
from rankkit.types import Run

if TYPE_CHECKING:  # torch is imported where it is used, so reading a config does not load it
    import torch

logger = logging.getLogger(__name__)

Heuristic = Literal["reciprank", "normscore", "kdescore"]
Form = Literal["auto", "pointwise", "pairwise"]
Weighting = Literal["sample", "batch"]
HEURISTICS = get_args(Heuristic)
FORMS = get_args(Form)
WEIGHTINGS = get_args(Weighting)
EPS = 1e-8
_CHUNK = 1 << 22  # KDE matrix entries evaluated at once (bounds memory)


def _choice_error(key: str, value: object, allowed: tuple[str, ...]) -> str:
    hint = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return f"{key} {value!r} is not known{suggestion}; allowed: {', '.join(allowed)}"


def kde_cdf(points: np.ndarray, at: np.ndarray) -> np.ndarray:
    """CDF at ``at`` of a 1-D Gaussian KDE fitted to ``points`` (Scott's rule bandwidth).

    Matches ``scipy.stats.gaussian_kde(points).integrate_box_1d(-inf, s)``: the bandwidth
    is the sample standard deviation (ddof=1) times n^(-1/5), and the CDF is the mean over
    points of the standard normal CDF of (s - x_i) / h. Needs at least two distinct points;
    otherwise every value is the neutral 0.5. The result is monotone non-decreasing in s.
    """
    import torch

    x = np.asarray(points, dtype=np.float64).ravel()
    s = np.asarray(at, dtype=np.float64).ravel()
    if x.size < 2 or np.unique(x).size < 2:
        return np.full(s.shape, 0.5)
    h = float(np.std(x, ddof=1)) * x.size ** (-0.2)
    order = np.argsort(s, kind="stable")
    xs = torch.from_numpy(x)
    out = np.empty(s.size)
    step = max(1, _CHUNK // x.size)
    for start in range(0, s.size, step):
        rows = torch.from_numpy(s[order[start : start + step]])
        z = (rows[:, None] - xs[None, :]) / h
        out[start : start + step] = torch.special.ndtr(z).mean(dim=1).numpy()
    out = np.clip(np.maximum.accumulate(out), 0.0, 1.0)  # guard against rounding wiggles
    result = np.empty_like(out)
    result[order] = out
    return result


class Difficulty:
    """Difficulty D(qid, docid) in [0, 1] from a first-stage run, by one of ``HEURISTICS``.

    ``heuristic`` picks ``reciprank``, ``normscore`` or ``kdescore`` (see the module
    docstring); an unknown name raises :class:`ConfigError`. Values are computed with
    numpy once per query, on first use, and cached; a document (or a whole query) absent
    from the run gets 1 / ``unretrieved_rank`` under ``reciprank`` and 0.0 otherwise.
    """

    def __init__(self, run: Run, heuristic: str, unretrieved_rank: int = 1000) -> None:
        if heuristic not in HEURISTICS:
            raise ConfigError(_choice_error("difficulty heuristic", heuristic, HEURISTICS))
        if isinstance(unretrieved_rank, bool) or not isinstance(unretrieved_rank, int) or unretrieved_rank < 1:
            raise ConfigError(f"unretrieved_rank must be an integer >= 1, got {unretrieved_rank!r}")
        self.run = run
        self.heuristic = heuristic
        self.unretrieved_rank = unretrieved_rank
        self.default = 1.0 / unretrieved_rank if heuristic == "reciprank" else 0.0
        self._cache: dict[str, dict[str, float]] = {}

    def __call__(self, qid: str, docid: str) -> float:
        """D for one (query, document) pair, computing and caching the query's table on first use."""
        table = self._cache.get(qid)
        if table is None:
            table = self._cache[qid] = self._compute(qid)
        return table.get(docid, self.default)

    def _compute(self, qid: str) -> dict[str, float]:
        if qid not in self.run:
            logger.debug("query %r is not in run %r; all its documents count as unretrieved", qid, self.run.name)
            return {}
        if self.heuristic == "reciprank":
            ranked = self.run.ranked(qid)
            return {docid: 1.0 / rank for rank, (docid, _) in enumerate(ranked, start=1)}
        docs = self.run[qid]
        docids = list(docs)
        scores = np.fromiter(docs.values(), dtype=np.float64, count=len(docids))
        if self.heuristic == "normscore":
            lo, hi = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 0.0)
            values = np.full(scores.shape, 0.5) if hi <= lo else (scores - lo) / (hi - lo)
        else:
            values = kde_cdf(scores, scores)
        return dict(zip(docids, values.tolist()))


def pointwise_ease(D: torch.Tensor, labels: torch.Tensor, anti: bool = False) -> torch.Tensor:
    """Per-sample ease weights [G, n]: D for relevant (label > 0) docs, 1 - D for the others.

    With ``anti`` the weights become 1 - w (anti-curriculum, hardest first); eps = 1e-8 is
    added to every weight afterwards so no sample is ever weighted exactly zero.
    """
    import torch

    w = torch.where(labels > 0, D, 1.0 - D)
    if anti:
        w = 1.0 - w
    return w + EPS


def pairwise_ease(D: torch.Tensor, labels: torch.Tensor, anti: bool = False) -> torch.Tensor:
    """Per-group ease weights [G]: min over (positive i, negative j) of (D_i - D_j + 1) / 2.

    Each row is one group of n candidates; all positive/negative pairs of the row count,
    and the hardest pair sets the weight. A row lacking a positive or a negative gets the
    neutral 1.0 (also under ``anti``, which otherwise uses 1 - w); eps = 1e-8 is added last.
    """
    import torch

    pos, neg = labels > 0, labels <= 0
    pairs = pos[:, :, None] & neg[:, None, :]
    diff = D[:, :, None] - D[:, None, :]
    hardest = diff.masked_fill(~pairs, math.inf).amin(dim=(1, 2))
    has_pair = pairs.flatten(1).any(dim=1)
    w = (hardest + 1.0) / 2.0
    if anti:
        w = 1.0 - w
    w = torch.where(has_pair, w, torch.ones_like(w))
    return w + EPS


def anneal(w: torch.Tensor, step: int, end_step: int) -> torch.Tensor:
    """Anneal weights linearly to 1: w * (1 - step/m) + step/m before step m, exactly 1 from m on.

    ``end_step`` is m in optimiser steps; m <= 0 disables the curriculum (all ones).
    """
    import torch

    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if end_step <= 0 or step >= end_step:
        return torch.ones_like(w)
    frac = step / end_step
    return w * (1.0 - frac) + frac


@dataclass(slots=True)
class CurriculumConfig:
    """Options of a difficulty curriculum (YAML maps onto these fields 1:1).

    ``heuristic`` is one of ``HEURISTICS`` or None (no curriculum). ``end_step`` is m, the
    step at which weights reach 1: a value in (0, 1] is a fraction of the total number of
    optimiser steps, a value > 1 an absolute (whole) step count. ``anti`` switches to the
    anti-curriculum. ``form`` is ``pointwise``, ``pairwise`` or ``auto`` (pointwise for a
    pointwise objective, pairwise otherwise). ``weighting`` is ``sample`` (per-sample, as in
    the paper) or ``batch`` (OpenNIR's batch-mean weight).
    """

    heuristic: Heuristic | None = None
    end_step: Annotated[float, Field(gt=0, description="a fraction in (0, 1] or a whole step count > 1")] = 0.2
    anti: bool = False
    form: Form = "auto"
    weighting: Weighting = "sample"

    def __post_init__(self) -> None:
        if self.heuristic is not None and self.heuristic not in HEURISTICS:
            raise ValueError(_choice_error("heuristic", self.heuristic, HEURISTICS))
        m = self.end_step
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m <= 0:
            raise ValueError(f"end_step must be a fraction in (0, 1] or a step count > 1, got {m!r}")
        if m > 1 and m != int(m):
            raise ValueError(f"end_step > 1 is an absolute step count and must be a whole number, got {m!r}")
        if not isinstance(self.anti, bool):
            raise ValueError(f"anti must be true or false, got {self.anti!r}")
        if self.form not in FORMS:
            raise ValueError(_choice_error("form", self.form, FORMS))
        if self.weighting not in WEIGHTINGS:
            raise ValueError(_choice_error("weighting", self.weighting, WEIGHTINGS))
        validate_fields(self, "curriculum")


class Curriculum:
    """Turns difficulties and labels into annealed loss weights for one training run.

    ``total_steps`` (optimiser steps) resolves a fractional ``end_step``;
    ``pointwise_objective`` resolves ``form="auto"``. :meth:`weights` returns [G, n] weights
    for the pointwise form and [G] for the pairwise form.
    """

    def __init__(self, config: CurriculumConfig, total_steps: int, pointwise_objective: bool) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps must be an integer >= 0, got {total_steps!r}")
        self.config = config
        self.total_steps = total_steps
        form = config.form
        self.form = ("pointwise" if pointwise_objective else "pairwise") if form == "auto" else form
        logger.info(
            "curriculum: heuristic=%s form=%s anti=%s weighting=%s end_step=%d of %d steps",
            config.heuristic, self.form, config.anti, config.weighting, self.end_step, total_steps,
        )

    @property
    def end_step(self) -> int:
        """m in optimiser steps: ``round(fraction * total_steps)`` (at least 1) or the absolute count."""
        m = self.config.end_step
        if m > 1:
            return int(m)
        return max(1, round(m * self.total_steps)) if self.total_steps > 0 else 0

    def weights(self, D: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
        """Annealed weights at optimiser ``step`` for a batch of G groups of n candidates.

        ``D`` and ``labels`` are [G, n]. Returns [G, n] (pointwise) or [G] (pairwise); all
        ones when the config has no heuristic or once ``step >= end_step``. With
        ``weighting="batch"`` every entry is the batch mean of the annealed weights.
        """
        import torch

        if D.shape != labels.shape or D.dim() != 2:
            raise ValueError(f"D and labels must both be [G, n], got {tuple(D.shape)} and {tuple(labels.shape)}")
        if self.config.heuristic is None:
            shape = D.shape if self.form == "pointwise" else D.shape[:1]
            return torch.ones(shape, dtype=D.dtype, device=D.device)
        ease = pointwise_ease if self.form == "pointwise" else pairwise_ease
        w = anneal(ease(D, labels, anti=self.config.anti), step, self.end_step)
        if self.config.weighting == "batch":
            w = torch.full_like(w, float(w.mean()))
        return w
