"""Compile ranx's numba kernels once after installation (``python -m rankkit.warmup``).

ranx JIT-compiles its metrics, tests and fusion on first use (tens of seconds on a
small machine) and caches the machine code next to its sources. The Makefile runs
this once after installing, so the first real evaluation does not pay for it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Evaluate, compare and fuse two toy runs, touching the kernels rankkit uses."""
    from rankkit.evaluate import compare, evaluate
    from rankkit.pipeline import Fuse, Stage
    from rankkit.types import Qrels, Query, Run

    qrels = Qrels({"q1": {"a": 1, "b": 2}, "q2": {"c": 1}, "q3": {"a": 1}})
    run1 = Run({"q1": {"a": 2.0, "b": 1.0, "x": 0.5}, "q2": {"c": 1.0, "y": 2.0}, "q3": {"a": 1.0}}, name="r1")
    run2 = Run({"q1": {"b": 3.0, "a": 1.0}, "q2": {"y": 1.0, "c": 0.5}, "q3": {"z": 1.0}}, name="r2")
    metrics = ["ndcg@10", "recall@100", "mrr@10", "map@100", "precision@10", "recall@1000", "ndcg@5"]
    evaluate(run1, qrels, metrics)
    evaluate(run1, qrels, metrics, per_query=True)
    for test in ("student", "fisher"):
        compare([run1, run2], qrels, metrics, stat_test=test, n_permutations=10)

    class _Fixed(Stage):
        def __init__(self, run: Run) -> None:
            self.run = run

        def transform(self, queries: list[Query], run: Run | None) -> Run:
            return self.run

    queries = [Query(q, "x") for q in qrels]
    for method, norm, params in (("rrf", None, {}), ("wsum", "min-max", {"weights": [0.5, 0.5]}),
                                 ("sum", "min-max", {}), ("mnz", "zmuv", {})):
        Fuse([_Fixed(run1), _Fixed(run2)], method=method, norm=norm, params=params)(queries)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    warm_up()
    log.info("ranx kernels compiled")
