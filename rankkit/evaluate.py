"""Evaluation on ranx: metrics, paired significance tests with correction, tables.

Conventions (stated once, applied everywhere): metrics are averaged over the queries
of the qrels; a judged query missing from a run scores 0 and run queries without
judgements are ignored (trec_eval ``-c``). Metric names are ranx's (``ndcg@10``,
``recall@100``, ``mrr@10``, ``map@1000``, ``precision@5`` ...). Significance tests
are ranx's paired tests (``student`` t-test, ``fisher`` randomisation, ``tukey``
HSD), each run against a baseline, with Holm or Bonferroni correction over the
family of comparisons of one metric.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rankkit.errors import ConfigError
from rankkit.types import Qrels, Run

log = logging.getLogger(__name__)
# ranx's numba kernels warn about a harmless uint64 -> int64 cast of hashed docids.
warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")
CORRECTIONS = ("holm", "bonferroni", "none")


def _comparable(run: Run, qrels: Qrels) -> Run:
    """Restrict a run to judged queries and add empty results for judged queries it lacks."""
    data = {q: dict(run[q]) if q in run else {} for q in qrels}
    return Run(data, name=run.name)


def _ranx_pair(run: Run, qrels: Qrels) -> tuple[Any, Any]:
    import ranx

    if not len(qrels):
        raise ConfigError("qrels are empty: nothing to evaluate against")
    rq = qrels.to_ranx()
    rr = ranx.Run.from_dict(_comparable(run, qrels).to_dict())
    rr.name = run.name
    return rq, rr


def evaluate(
    run: Run, qrels: Qrels, metrics: Sequence[str] | str = DEFAULT_METRICS, per_query: bool = False
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Mean metric values of ``run`` against ``qrels`` (or ``{metric: {qid: value}}`` with ``per_query``)."""
    import ranx

    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    rq, rr = _ranx_pair(run, qrels)
    if per_query:
        scores = ranx.evaluate(rq, rr, metrics, return_mean=False, make_comparable=True)
        if len(metrics) == 1:
            scores = {metrics[0]: scores}
        qids = list(rq.keys())
        return {m: {q: float(v) for q, v in zip(qids, scores[m], strict=True)} for m in metrics}
    values = ranx.evaluate(rq, rr, metrics, make_comparable=True)
    if len(metrics) == 1:
        values = {metrics[0]: values}
    return {m: float(values[m]) for m in metrics}


def _adjust(p_values: list[float], method: str) -> list[float]:
    """Family-wise corrected p-values (Holm step-down or Bonferroni), capped at 1."""
    m = len(p_values)
    if method == "none" or m == 0:
        return list(p_values)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in p_values]
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Comparison:
    """Result of :func:`compare`: means, paired p-values against the baseline, W/T/L.

    ``p_values[run][metric]`` is the raw p-value of the test of ``run`` against the
    baseline and ``p_adjusted`` the corrected one; ``significant`` uses ``alpha`` on
    the corrected value. ``per_query`` holds each run's per-query scores.
    """

    baseline: str
    metrics: list[str]
    means: dict[str, dict[str, float]]
    p_values: dict[str, dict[str, float]]
    p_adjusted: dict[str, dict[str, float]]
    win_tie_loss: dict[str, dict[str, tuple[int, int, int]]]
    stat_test: str
    correction: str
    alpha: float
    per_query: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict, repr=False)

    def significant(self, run: str, metric: str) -> bool:
        """Whether ``run`` differs from the baseline on ``metric`` at ``alpha`` after correction."""
        return run != self.baseline and self.p_adjusted[run][metric] < self.alpha

    def table(self, digits: int = 4) -> str:
        """A plain-text table: one row per run, ``*`` marks a significant difference, arrows its sign."""
        from tabulate import tabulate

        rows = []
        for name, values in self.means.items():
            row = [name]
            for m in self.metrics:
                cell = f"{values[m]:.{digits}f}"
                if self.significant(name, m):
                    cell += "*" + ("+" if values[m] > self.means[self.baseline][m] else "-")
                elif name != self.baseline:
                    cell += f" (p={self.p_adjusted[name][m]:.3f})"
                row.append(cell)
            rows.append(row)
        note = (f"* = significant vs {self.baseline!r} ({self.stat_test} paired test, "
                f"{self.correction} correction, alpha={self.alpha}); p shown otherwise")
        return tabulate(rows, headers=["run", *self.metrics], tablefmt="github") + "\n" + note

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without per-query scores)."""
        return {
            "baseline": self.baseline, "metrics": self.metrics, "means": self.means,
            "p_values": self.p_values, "p_adjusted": self.p_adjusted,
            "win_tie_loss": {r: {m: list(v) for m, v in d.items()} for r, d in self.win_tie_loss.items()},
            "stat_test": self.stat_test, "correction": self.correction, "alpha": self.alpha,
        }


def compare(
    runs: Sequence[Run] | Mapping[str, Run],
    qrels: Qrels,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    baseline: str | None = None,
    stat_test: str = "student",
    correction: str = "holm",
    alpha: float = 0.05,
    n_permutations: int = 1000,
    seed: int = 42,
) -> Comparison:
    """Evaluate runs and test each against ``baseline`` (default: the first run) with ranx.

    ``stat_test`` is one of ranx's ``student``, ``fisher`` or ``tukey``; ``correction``
    is ``holm``, ``bonferroni`` or ``none`` and is applied per metric across the
    comparisons with the baseline. Run names must be unique.
    """
    import ranx

    if isinstance(runs, Mapping):
        runs = [r.with_name(n) for n, r in runs.items()]
    runs = list(runs)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"run names must be unique for compare(), got {names}")
    if len(runs) < 2:
        raise ConfigError("compare() needs at least two runs")
    baseline = baseline or names[0]
    if baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the runs {names}")
    if correction not in CORRECTIONS:
        raise ConfigError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    if stat_test not in ("student", "fisher", "tukey"):
        raise ConfigError(f"unknown stat_test {stat_test!r}; choose student, fisher or tukey")

    rq = qrels.to_ranx()
    ranx_runs = []
    for r in runs:
        rr = ranx.Run.from_dict(_comparable(r, qrels).to_dict())
        rr.name = r.name
        ranx_runs.append(rr)
    report = ranx.compare(rq, ranx_runs, metrics, stat_test=stat_test, n_permutations=n_permutations,
                          max_p=alpha, random_seed=seed, make_comparable=True)
    qids = list(rq.keys())
    per_query = {}
    for rr in ranx_runs:
        scores = ranx.evaluate(rq, rr, metrics, return_mean=False, make_comparable=True)
        scores = {metrics[0]: scores} if len(metrics) == 1 else scores
        per_query[rr.name] = {m: {q: float(v) for q, v in zip(qids, scores[m], strict=True)} for m in metrics}

    means = {n: {m: float(report.results[n][m]) for m in metrics} for n in names}
    p_values: dict[str, dict[str, float]] = {n: {} for n in names}
    wtl: dict[str, dict[str, tuple[int, int, int]]] = {n: {} for n in names}
    for n in names:
        for m in metrics:
            if n == baseline:
                p_values[n][m] = 1.0
                wtl[n][m] = (0, len(qids), 0)
                continue
            entry = report.comparisons.get(frozenset([baseline, n])) or report.comparisons.get((baseline, n)) \
                or report.comparisons.get((n, baseline))
            p = float(entry[m]["p_value"])
            # Identical per-query scores make the t statistic 0/0: no difference, p = 1.
            p_values[n][m] = 1.0 if math.isnan(p) else p
            a, b = per_query[n][m], per_query[baseline][m]
            wtl[n][m] = (sum(a[q] > b[q] for q in qids), sum(a[q] == b[q] for q in qids),
                         sum(a[q] < b[q] for q in qids))
    others = [n for n in names if n != baseline]
    p_adj: dict[str, dict[str, float]] = {baseline: {m: 1.0 for m in metrics}}
    for n in others:
        p_adj[n] = {}
    for m in metrics:
        adjusted = _adjust([p_values[n][m] for n in others], correction)
        for n, p in zip(others, adjusted, strict=True):
            p_adj[n][m] = p
    return Comparison(baseline, metrics, means, p_values, p_adj, wtl, stat_test, correction, alpha, per_query)
