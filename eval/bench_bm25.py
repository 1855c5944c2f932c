"""Side-by-side benchmark: rankkit BM25 vs Pyserini's ``LuceneSearcher`` directly vs ``bm25s``.

On one dataset, in one process: rankkit's BM25 stage and a bare Pyserini
``LuceneSearcher.batch_search`` search the *same* Lucene index with the same thread
count, batch size, k1/b and hits; ``bm25s`` (a pure-Python sparse-matrix BM25)
indexes the same title+text and retrieves the same number of hits. Each searcher is
timed over ``repeats`` rounds in alternating order after one warm-up round (queries/s
from the median round; the best round is reported too), and each
run is scored with ranx (nDCG@10, R@100). The Pyserini figure is given twice: the bare
``batch_search`` call, and the call plus reading each hit's docid and score into a
``{qid: {docid: score}}`` dict (what any caller needs to write or evaluate a run).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from typing import Any

from rankkit.data.dataset import Dataset

log = logging.getLogger(__name__)


def bench_bm25(dataset: Dataset, threads: int = 2, hits: int = 1000, batch_size: int = 64, repeats: int = 3,
               k1: float = 0.9, b: float = 0.4) -> dict[str, Any]:
    """Return queries/s and effectiveness of rankkit BM25, raw Pyserini and bm25s on ``dataset``."""
    import bm25s
    import numpy as np

    from rankkit.evaluate import evaluate
    from rankkit.retrieve.bm25 import BM25
    from rankkit.types import Run

    queries = dataset.queries
    stage = BM25(dataset, k1=k1, b=b, hits=hits, threads=threads, batch_size=batch_size, show_progress=False)
    os.environ.setdefault("OPENAI_API_KEY", "unused")  # pyserini.search imports an OpenAI client that wants a key
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(stage.index.path))  # the peer: a bare Pyserini LuceneSearcher on the same index
    searcher.set_bm25(k1, b)

    def run_rankkit() -> Run:
        return stage(queries)

    def run_pyserini(extract: bool) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for start in range(0, len(queries), batch_size):
            batch = queries[start : start + batch_size]
            results = searcher.batch_search([q.text for q in batch], [q.qid for q in batch], k=hits,
                                            threads=threads)
            if extract:
                for qid, hs in results.items():
                    out[qid] = {h.docid: h.score for h in hs}
        return out

    docs = list(dataset.docs_iter())
    t0 = time.perf_counter()
    corpus_tokens = bm25s.tokenize([d.contents for d in docs], stopwords="en", show_progress=False)
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(corpus_tokens, show_progress=False)
    bm25s_index_s = time.perf_counter() - t0
    docids = np.array([d.docid for d in docs])

    def run_bm25s() -> dict[str, dict[str, float]]:
        q_tokens = bm25s.tokenize([q.text for q in queries], stopwords="en", show_progress=False)
        idx, scores = retriever.retrieve(q_tokens, k=min(hits, len(docs)), n_threads=threads,
                                         show_progress=False)
        return {q.qid: {str(d): float(s) for d, s in zip(docids[i], sc, strict=True) if s > 0}
                for q, i, sc in zip(queries, idx, scores, strict=True)}

    contenders = {"rankkit": run_rankkit, "pyserini_batch_search": lambda: run_pyserini(False),
                  "pyserini_batch_search+extract": lambda: run_pyserini(True), "bm25s": run_bm25s}
    outputs = {name: fn() for name, fn in contenders.items()}  # warm-up round (JIT, caches)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(repeats):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            t = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t)
    best = {name: min(ts) for name, ts in times.items()}
    median = {name: statistics.median(ts) for name, ts in times.items()}
    qps = {name: len(queries) / s for name, s in median.items()}
    qps_best = {name: len(queries) / s for name, s in best.items()}
    effectiveness = {}
    for name in ("rankkit", "pyserini_batch_search+extract", "bm25s"):
        out = outputs[name]
        run = out if isinstance(out, Run) else Run(out, name=name)
        effectiveness[name] = evaluate(run, dataset.qrels, ["ndcg@10", "recall@100"])
    peer = outputs["pyserini_batch_search+extract"]
    same = all(dict(outputs["rankkit"][q.qid]) == peer[q.qid] for q in queries)
    return {
        "dataset": dataset.name, "queries": len(queries), "docs": len(docs), "threads": threads, "hits": hits,
        "batch_size": batch_size, "repeats": repeats, "seconds": times, "median_seconds": median,
        "best_seconds": best, "queries_per_s": qps, "queries_per_s_best": qps_best,
        "ratio_rankkit_vs_pyserini_batch_search": qps["rankkit"] / qps["pyserini_batch_search"],
        "ratio_rankkit_vs_pyserini_batch_search+extract": qps["rankkit"] / qps["pyserini_batch_search+extract"],
        "ratio_rankkit_vs_bm25s": qps["rankkit"] / qps["bm25s"],
        "ratio_best_rankkit_vs_pyserini_batch_search": qps_best["rankkit"] / qps_best["pyserini_batch_search"],
        "bm25s_index_seconds": bm25s_index_s, "effectiveness": effectiveness,
        "rankkit_run_equals_pyserini": same, "cpus": os.cpu_count(),
    }
