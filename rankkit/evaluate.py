"""Evaluation on ranx: metrics, paired significance tests with correction, fusion, tables.

Conventions (stated once, applied everywhere): metrics are averaged over the queries
of the qrels; a judged query missing from a run (or present with no results) scores 0
and run queries without judgements are ignored (trec_eval ``-c``), so a partially
judged run is evaluated on its judged queries only. Metric names are ranx's
(``ndcg@10``, ``recall@100``, ``mrr@10``, ``map@1000``, ``precision@5`` ...).
Significance tests are ranx's paired tests (``student`` t-test, ``fisher``
randomisation, ``tukey`` HSD), each run against a baseline, with Holm or Bonferroni
correction over the family of comparisons of one metric.

Errors (:class:`~rankkit.errors.EvaluationError`, a ``ConfigError``/``ValueError``):
empty qrels; a run with no result for any judged query (an empty run, or one whose
qids do not match the qrels', e.g. ``1`` vs ``q1``) - rankkit raises rather than
return zeros, since such a run is almost always a mistake; an unknown metric name;
no metric at all.

Ids: ranx (numba) compiles its kernels for a fixed-width unicode type as wide as the
longest docid, so one very long docid made evaluation slow, memory hungry or crash.
rankkit therefore hands ranx compact keys, never ids: zero-padded decimal strings of
one fixed width (:data:`KEY_WIDTH` digits; wider only past ``10**KEY_WIDTH`` ids),
shared by the qrels and every run of one call, and every id-keyed output (per-query
values, fused runs) is mapped back. Query keys are numbered in sorted qid order, so the
query order ranx sorts by (and with it the float summation order of the means and the
pairing of significance tests) is unchanged; the metrics are bit-identical to ranx on
the original ids, and the fixed width means one compiled kernel serves every collection.

Ties: ranx ranks a query's documents by score with an unstable sort over the run's
insertion order (sorting again in ``make_comparable``), so tied documents would come out
in an arbitrary order. Evaluation hands ranx ``n - rank`` in :meth:`rankkit.types.Run.ranked`
order instead of the scores, which is trec_eval's order (score descending, ties by docid
descending); ranx's metrics depend on the order only. Fusion keeps the real scores.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rankkit.errors import ConfigError, EvaluationError
from rankkit.types import Qrels, Run

log = logging.getLogger(__name__)
# ranx's numba kernels warn about a harmless uint64 -> int64 cast of hashed docids.
warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")
CORRECTIONS = ("holm", "bonferroni", "none")
#: digits of the compact keys rankkit hands ranx instead of ids (one numba specialisation up to 10**8 ids)
KEY_WIDTH = 8
_RANX_METRICS = ("hits", "hit_rate", "precision", "recall", "f1", "r-precision", "mrr", "map", "dcg", "dcg_burges",
                 "ndcg", "ndcg_burges", "bpref", "rbp")


class _Keys:
    """Compact fixed-width string keys for a set of ids, and the way back.

    With ``ordered`` the keys are numbered in sorted id order (key order == id order);
    otherwise in first-seen order, which avoids sorting (costly for long ids sharing a
    long prefix) where ranx never looks at the order of the strings.
    """

    __slots__ = ("key", "id")

    def __init__(self, ids: Iterable[str], ordered: bool) -> None:
        unique = sorted(set(ids)) if ordered else list(dict.fromkeys(ids))
        width = max(KEY_WIDTH, len(str(len(unique) - 1)))
        self.key: dict[str, str] = {i: f"{n:0{width}d}" for n, i in enumerate(unique)}
        self.id: dict[str, str] = {k: i for i, k in self.key.items()}


class _Compact:
    """Query and document keys shared by the qrels and runs of one ranx call.

    Query keys follow the qids' sorted order: ranx sorts queries by key, and that order
    fixes the summation order of the means and the pairing in significance tests.
    Document keys are numbered as first seen: ranx orders a query's documents by score
    and insertion position only, never by docid (evaluation passes rank-order scores).
    """

    def __init__(self, qids: Iterable[str], docids: Iterable[str]) -> None:
        self.q = _Keys(qids, ordered=True)
        self.d = _Keys(docids, ordered=False)

    @classmethod
    def for_evaluation(cls, qrels: Qrels, runs: Sequence[Run]) -> _Compact:
        """Keys for the judged queries and every docid of the qrels and of the runs' judged queries."""

        def docids() -> Iterator[str]:
            for docs in qrels.values():
                yield from docs
            for run in runs:
                for q in qrels:
                    if q in run:
                        yield from run[q]

        return cls(qrels, docids())

    def qrels(self, qrels: Qrels) -> Any:
        """A ranx.Qrels over keys; negative grades become 0, as :meth:`Qrels.to_ranx`."""
        import ranx

        qk, dk = self.q.key, self.d.key
        # The constructor, not ``from_dict``: that one starts from an empty typed dict, a numba
        # operation compiled anew in every process (about 2.6 s on 2 cores).
        return ranx.Qrels({qk[q]: {dk[d]: max(g, 0) for d, g in docs.items()} for q, docs in qrels.items()})

    def run(self, run: Run, qids: Iterable[str], name: str | None = None, by_rank: bool = False) -> Any:
        """A ranx.Run over keys for ``qids`` (empty results where ``run`` lacks one).

        ``by_rank`` (evaluation): each document's score is replaced by ``n - rank`` in
        :meth:`Run.ranked` order, so ranx, whose sort of tied scores is not stable, sees
        exactly trec_eval's order (score descending, ties by docid descending). Every ranx
        metric depends on the order only. Fusion keeps the real scores.
        """
        import ranx

        qk, dk = self.q.key, self.d.key
        if by_rank:
            data = {}
            for q in qids:
                ranked = run.ranked(q) if q in run else []
                data[qk[q]] = {dk[d]: float(len(ranked) - i) for i, (d, _) in enumerate(ranked)}
        else:
            data = {qk[q]: {dk[d]: s for d, s in run[q].items()} if q in run else {} for q in qids}
        rr = ranx.Run(data)  # not from_dict (see qrels)
        rr.name = run.name if name is None else name
        return rr

    def typed(self, rq: Any, rr: Any) -> tuple[Any, Any]:
        """ranx's typed-list form of a qrels and a run over the same query keys, for ``ranx.evaluate``.

        Both were built sorted over the same judged queries (:meth:`run` adds empty
        results where the run lacks one), so ranx's ``make_comparable`` and key check have
        nothing to do; skipping them skips the numba typed-dict operations they run from
        Python, which numba compiles anew in every process (about 7 s on 2 cores).
        """
        return rq.to_typed_list(), rr.to_typed_list()

    def sorted_qids(self, qids: Iterable[str]) -> list[str]:
        """``qids`` in ranx's query order (their keys sorted), as the per-query arrays of ``ranx.evaluate``."""
        return self.qids_back(sorted(self.q.key[q] for q in qids))

    def run_back(self, rr: Any, name: str) -> Run:
        """A rankkit :class:`Run` with the original ids from a ranx.Run over keys."""
        qi, di = self.q.id, self.d.id
        return Run({qi[q]: {di[d]: s for d, s in docs.items()} for q, docs in rr.to_dict().items()}, name=name)

    def qids_back(self, keys: Iterable[str]) -> list[str]:
        """Original qids of query keys."""
        return [self.q.id[k] for k in keys]


def _metric_list(metrics: Sequence[str] | str) -> list[str]:
    """The metrics as a list, each checked against ranx's parser; unknown names raise :class:`EvaluationError`."""
    out = [metrics] if isinstance(metrics, str) else list(metrics)
    if not out:
        raise EvaluationError("no metric given: name at least one, e.g. ndcg@10")
    try:
        from ranx.meta.evaluate import extract_metric_and_params
        from ranx.metrics import metric_switch
    except ImportError:  # another ranx layout: let ranx report bad names itself
        return out
    for metric in out:
        try:
            name, k, _ = extract_metric_and_params(metric)
            metric_switch(name)
            ok = k >= 0
        except (ValueError, IndexError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise EvaluationError(
                f"unknown metric {metric!r}: use ranx's names with an optional @cutoff (e.g. ndcg@10, recall@100, "
                f"mrr@10, map@1000, precision@5); supported: {', '.join(_RANX_METRICS)}")
    return out


def _check_qrels(qrels: Qrels) -> None:
    if not len(qrels) or not qrels.num_judgements:
        raise EvaluationError(f"qrels are empty ({len(qrels)} queries, {qrels.num_judgements} judgements): "
                              "nothing to evaluate against")


def _check_run(run: Run, qrels: Qrels) -> None:
    """Raise :class:`EvaluationError` when ``run`` has no result for any judged query (counts and sample qids)."""
    if any(len(run[q]) for q in qrels if q in run):
        return
    results = sum(len(docs) for docs in run.values())
    shared = sum(1 for q in run if q in qrels)
    what = "is empty" if not results else "has no result for any judged query"
    message = (f"run {run.name!r} {what}: it has {len(run)} queries and {results} results, the qrels judge "
               f"{len(qrels)} queries, {shared} queries in common")
    if results and not shared:
        message += (f" (run qids e.g. {', '.join(_show(q) for q in list(run)[:3])}; "
                    f"qrels qids e.g. {', '.join(_show(q) for q in list(qrels)[:3])})")
    raise EvaluationError(message)


def _show(qid: str, limit: int = 30) -> str:
    """An id for a message: quoted, cut after ``limit`` characters with its length shown."""
    return repr(qid) if len(qid) <= limit else f"{qid[:limit]!r}... ({len(qid)} chars)"


def evaluate(
    run: Run, qrels: Qrels, metrics: Sequence[str] | str = DEFAULT_METRICS, per_query: bool = False
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Mean metric values of ``run`` against ``qrels`` (or ``{metric: {qid: value}}`` with ``per_query``).

    Averages over the judged queries (a judged query the run lacks scores 0; unjudged
    run queries are ignored). Raises :class:`~rankkit.errors.EvaluationError` for empty
    qrels, a run with no result for any judged query, or an unknown metric.
    """
    import numpy as np

    metrics = _metric_list(metrics)
    _check_qrels(qrels)
    _check_run(run, qrels)
    keys = _Compact.for_evaluation(qrels, [run])
    scores = _ranx_per_query(*keys.typed(keys.qrels(qrels), keys.run(run, qrels, by_rank=True)), metrics)
    if per_query:
        qids = keys.sorted_qids(qrels)
        return {m: {q: float(v) for q, v in zip(qids, scores[m], strict=True)} for m in metrics}
    return {m: float(np.mean(scores[m])) for m in metrics}  # ranx's own mean


def _ranx_per_query(tq: Any, tr: Any, metrics: list[str]) -> dict[str, Any]:
    """``{metric: per-query values}`` from ``ranx.evaluate`` on typed lists (see :meth:`_Compact.typed`).

    With one ``name@k`` metric and typed-list input, ranx 0.3.21 looks its result up under
    ``name`` and fails (KeyError); asking for the metric twice returns the dict.
    """
    import ranx

    asked = metrics if len(metrics) > 1 else [metrics[0], metrics[0]]
    return ranx.evaluate(tq, tr, asked, return_mean=False)


def fuse_runs(
    runs: Sequence[Run],
    method: str = "rrf",
    norm: str | None = None,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Run:
    """Fuse runs with :func:`ranx.fuse` over compact keys; the fused run carries the inputs' ids.

    ``method`` (``rrf``, ``sum``, ``mnz``, ``wsum`` ...), ``norm`` (``None``: none,
    ``min-max``, ``zmuv`` ...) and ``params`` (e.g. ``{"k": 60}``, ``{"weights": [...]}``)
    go to ranx unchanged. The runs must cover the same queries (ranx's rule); an input
    without any result raises :class:`~rankkit.errors.EvaluationError`.
    """
    import ranx

    runs = list(runs)
    if len(runs) < 2:
        raise ConfigError(f"fusion needs at least two runs, got {len(runs)}")
    for i, run in enumerate(runs):
        if not any(len(docs) for docs in run.values()):
            raise EvaluationError(f"fusion input {i} (run {run.name!r}) has no results")
        if set(run) != set(runs[0]):
            extra = sorted(set(run) ^ set(runs[0]))
            raise EvaluationError(f"fusion inputs 0 ({runs[0].name!r}) and {i} ({run.name!r}) cover different "
                                  f"queries, e.g. {', '.join(_show(q) for q in extra[:3])} ({len(extra)} differ)")
    keys = _Compact(runs[0], (d for run in runs for docs in run.values() for d in docs))
    ranx_runs = [keys.run(run, run, name=f"in{i}") for i, run in enumerate(runs)]
    fused = ranx.fuse(runs=ranx_runs, norm=norm, method=method, params=dict(params) if params else None)
    return keys.run_back(fused, name or f"{method}({', '.join(r.name for r in runs)})")


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
        # disable_numparse: the cells are already formatted; tabulate would print "0.6050" as 0.605
        table = tabulate(rows, headers=["run", *self.metrics], tablefmt="github", disable_numparse=True)
        return table + "\n" + note

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
    comparisons with the baseline. Run names must be unique. Queries are those of the
    qrels, as in :func:`evaluate`, whose errors apply to every run.
    """
    import ranx

    if isinstance(runs, Mapping):
        runs = [r.with_name(n) for n, r in runs.items()]
    runs = list(runs)
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

    metrics = _metric_list(metrics)
    _check_qrels(qrels)
    for r in runs:
        _check_run(r, qrels)
    keys = _Compact.for_evaluation(qrels, runs)
    rq = keys.qrels(qrels)
    ranx_runs = [keys.run(r, qrels, by_rank=True) for r in runs]
    report = ranx.compare(rq, ranx_runs, metrics, stat_test=stat_test, n_permutations=n_permutations,
                          max_p=alpha, random_seed=seed, make_comparable=True)
    qids = keys.sorted_qids(qrels)
    per_query = {}
    for rr in ranx_runs:
        scores = _ranx_per_query(*keys.typed(rq, rr), metrics)
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
