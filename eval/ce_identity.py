"""Scoring identity of a saved cross-encoder across code versions, on SciFact test BM25 top-100.

Scores every (query, document) pair of BM25's top ``--depth`` for the first ``--queries``
SciFact test queries (all by default) with ``CrossEncoderModel.score`` (batch 64, fp32, CPU)
and saves the float32 scores, the pairs and the CE-alone nDCG@10. Run it once per code
version (put the other checkout first on ``PYTHONPATH``), then compare bit for bit::

    PYTHONPATH=/path/to/old/checkout python eval/ce_identity.py models/ce-scifact --output /tmp/old
    python eval/ce_identity.py models/ce-scifact --output /tmp/new
    python eval/ce_identity.py --compare /tmp/old /tmp/new

The script only uses APIs that both versions have (``CrossEncoderModel.load/score``,
``Pipeline.from_yaml``, ``load_dataset``, ``evaluate``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def score(model: str, output: Path, queries: int | None, depth: int) -> dict:
    """Score the pairs with ``model`` and write ``output``.npy / .json."""
    import rankkit
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.ce_model import CrossEncoderModel
    from rankkit.types import Run

    ds = rankkit.load_dataset("beir/scifact/test")
    run = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", ds)(ds.queries).top_k(depth)
    texts = ds.query_texts()
    qids = [q for q in run if q in texts][:queries]
    pairs = [(q, d) for q in qids for d, _ in run.ranked(q)]
    docs = ds.docs(list(dict.fromkeys(d for _, d in pairs)))
    ce = CrossEncoderModel.load(model)
    t0 = time.perf_counter()
    scores = ce.score([texts[q] for q, _ in pairs], [docs[d].contents for _, d in pairs], 64, device="cpu")
    seconds = time.perf_counter() - t0
    by_query: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, scores):
        by_query.setdefault(q, {})[d] = float(s)
    ndcg = rankkit.evaluate(Run(by_query), ds.qrels.restrict(qids), "ndcg@10")["ndcg@10"]
    info = {"model": model, "pairs": pairs, "queries": len(qids), "depth": depth, "seconds": round(seconds, 1),
            "ndcg@10": ndcg, "rankkit": str(Path(rankkit.__file__).parent)}
    output.parent.mkdir(parents=True, exist_ok=True)
    np.save(output.with_suffix(".npy"), scores)
    output.with_suffix(".json").write_text(json.dumps(info))
    return info


def compare(a: Path, b: Path) -> bool:
    """Whether two outputs hold the same pairs and bit-identical scores (prints a summary)."""
    ia, ib = (json.loads(p.with_suffix(".json").read_text()) for p in (a, b))
    sa, sb = (np.load(p.with_suffix(".npy")) for p in (a, b))
    same = ia["pairs"] == ib["pairs"] and np.array_equal(sa, sb)
    print(f"{len(sa)} pairs, {ia['queries']} queries; identical: {same}; max |diff| "
          f"{float(np.max(np.abs(sa - sb))) if sa.shape == sb.shape else 'n/a'}; "
          f"nDCG@10 {ia['ndcg@10']} vs {ib['ndcg@10']}")
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", help="a saved cross-encoder folder")
    ap.add_argument("--output", type=Path, help="output path prefix (.npy and .json are added)")
    ap.add_argument("--queries", type=int, default=None, help="first N test queries (default: all 300)")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = ap.parse_args()
    if args.compare:
        sys.exit(0 if compare(*args.compare) else 1)
    if not (args.model and args.output):
        ap.error("give MODEL and --output, or --compare A B")
    info = score(args.model, args.output, args.queries, args.depth)
    print(f"{len(info['pairs'])} pairs in {info['seconds']} s; CE-alone nDCG@10 {info['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
