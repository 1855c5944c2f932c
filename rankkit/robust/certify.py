"""Certified top-K robustness of a smoothed ranking, and the certified robust query ratio (CRQ).

CertDR (Wu et al., CIKM 2022, arXiv 2209.06691), Theorem 1 with a Monte Carlo margin: a
query's ranking by g is certified top-K robust when no admissible word substitution of any
candidate ranked below K can lift it into the top K. With estimates ĝ from N samples and the
total-variation bounds o_d (:meth:`PerturbationTable.bound`), an attacked document d' of d
scores at most g(d) + o_d, so the query is certified at K when

    ĝ(d_K) - max_{j > K} (ĝ(d_j) + o_{d_j}) - eps > 0,   eps = 2 sqrt(ln(2 / alpha) / (2 N))

(Hoeffding's inequality for the two estimates the comparison involves, alpha = 0.05). The
paper's code uses the looser ``ĝ(d_K) - ĝ(d_{K+1}) - max_{j>K} o_{d_j} - eps``
(``rule="paper"``); the per-document form (``rule="per_document"``, the default) certifies
every query the paper's does, and more. Documents in the top K are not attacked, and the
candidate list is fixed (the first stage is not attacked), as in the paper. The CRQ at K is the
fraction of queries certified; the paper's code computes the per-query certificates but never
aggregates them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rankkit.errors import ConfigError

Rule = Literal["per_document", "paper"]
#: The cutoffs of the paper's CRQ curves, as far as a candidate list reaches.
DEFAULT_KS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 50)


def hoeffding_margin(samples: int, alpha: float = 0.05) -> float:
    """eps = 2 sqrt(ln(2 / alpha) / (2 N)): the Monte Carlo margin of two N-sample estimates in [0, 1]."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return 2.0 * math.sqrt(math.log(2.0 / alpha) / (2.0 * samples))


def min_samples(alpha: float = 0.05) -> int:
    """The smallest N whose margin is below 1, the largest possible score gap (fewer can certify nothing)."""
    return math.floor(2.0 * math.log(2.0 / alpha)) + 1


def check_samples(samples: int, alpha: float = 0.05) -> None:
    """Raise :class:`ConfigError` when N is too small for any certificate (margin >= 1)."""
    eps = hoeffding_margin(samples, alpha)
    if eps >= 1.0:
        raise ConfigError(f"N = {samples} gives a Monte Carlo margin of {eps:.3f} >= 1 (alpha {alpha}), "
                          f"so no query can ever be certified; use N >= {min_samples(alpha)} "
                          "(the paper uses 1,000: margin 0.086)")


@dataclass(frozen=True)
class Certificate:
    """One query's certificate at K: the margin left (``radius`` > 0: certified)."""

    k: int
    radius: float

    @property
    def certified(self) -> bool:
        """Whether the query is certified top-K robust."""
        return self.radius > 0


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Document ids by score, highest first; ties by docid descending (trec_eval's order, as :class:`Run`)."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], _Desc(kv[0])))]


class _Desc(str):
    __slots__ = ()

    def __lt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__gt__(self, other)


def certify(scores: Mapping[str, float], bounds: Mapping[str, float], k: int, margin: float,
            rule: Rule = "per_document") -> Certificate:
    """The certificate at ``k`` of one query's smoothed scores ĝ, given each document's o_d."""
    order = ranked(scores)
    if k < 1 or k >= len(order):
        raise ConfigError(f"K = {k} needs at least K + 1 candidates ranked (a document below the top K to attack); "
                          f"this query has {len(order)}")
    top = scores[order[k - 1]]
    rest = order[k:]
    if rule == "paper":
        radius = top - scores[rest[0]] - max(bounds[d] for d in rest) - margin
    else:
        radius = top - max(scores[d] + bounds[d] for d in rest) - margin
    return Certificate(k, float(radius))


def crq(scores: Mapping[str, Mapping[str, float]], bounds: Mapping[str, float], ks: Sequence[int], samples: int,
        alpha: float = 0.05, rule: Rule = "per_document") -> dict[int, float]:
    """The certified robust query ratio at each K: the fraction of queries certified.

    ``scores`` maps each query to its candidates' ĝ; ``bounds`` maps documents to o_d. Raises
    :class:`ConfigError` when N can certify nothing, and when a K is not below every query's
    candidate count.
    """
    check_samples(samples, alpha)
    if not scores:
        raise ConfigError("no queries to certify")
    shortest = min(len(s) for s in scores.values())
    bad = [k for k in ks if k >= shortest]
    if bad:
        raise ConfigError(f"K = {bad[0]} is not below the candidate list: the shortest list has {shortest} "
                          f"documents, so K can be at most {shortest - 1}")
    eps = hoeffding_margin(samples, alpha)
    return {k: sum(certify(s, bounds, k, eps, rule).certified for s in scores.values()) / len(scores) for k in ks}
