"""Score interpolation of a reranker with its first stage, and choosing the weight on dev data.

``interpolate(first, second, w)`` min-max normalises each query's scores in both
runs and returns ``w * second + (1 - w) * first`` over the documents of ``second``
(the reranked candidates; a candidate missing from ``first`` counts as the first
stage's minimum). :func:`select_weight` picks ``w`` on a grid by a metric on
held-out queries, so the weight is never tuned on the test queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rankkit.types import Qrels, Run

DEFAULT_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def minmax(scores: Mapping[str, float]) -> dict[str, float]:
    """Per-query min-max normalisation to [0, 1]; all-equal scores map to 1.0."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return {d: 1.0 for d in scores}
    return {d: (s - lo) / (hi - lo) for d, s in scores.items()}


def interpolate(first: Run, second: Run, weight: float, name: str | None = None) -> Run:
    """``weight * minmax(second) + (1 - weight) * minmax(first)`` over the documents of ``second``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"interpolation weight must be in [0, 1], got {weight}")
    out: dict[str, dict[str, float]] = {}
    for qid, docs in second.items():
        b = minmax(docs)
        base = {d: s for d, s in first.get(qid, {}).items() if d in docs}
        floor = min(base.values()) if base else 0.0
        a = minmax({d: base.get(d, floor) for d in docs})
        out[qid] = {d: weight * b[d] + (1.0 - weight) * a[d] for d in docs}
    return Run(out, name=name or f"{second.name}~{first.name}")


def select_weight(first: Run, second: Run, qrels: Qrels, metric: str = "ndcg@10",
                  grid: Sequence[float] = DEFAULT_GRID) -> tuple[float, dict[float, float]]:
    """The grid weight with the best ``metric`` on ``qrels`` (ties: the larger weight), and all values."""
    from rankkit.evaluate import evaluate

    values = {float(w): float(evaluate(interpolate(first, second, w), qrels, metric)[metric]) for w in grid}
    best = max(values, key=lambda w: (round(values[w], 10), w))
    return best, values
