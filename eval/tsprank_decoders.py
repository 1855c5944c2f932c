"""TSPRank's path solvers on learned score matrices: time, proven optimality and nDCG@10 per decoder.

    RANKKIT_DATA_DIR=../shared/data python eval/tsprank_decoders.py --model <TSPRank folder> [--depth 30] [--queries 40]

``eval/tsp_latency.py`` times the solvers on random matrices; the matrices a trained
head produces can be much harder for the exact MILP. This script reorders BM25's top
``--depth`` for the first ``--queries`` SciFact test queries with one trained TSPRank model
under each decoder (``heuristic``, ``lkh``, ``milp`` with ``--time-limit`` seconds per
query) and reports the wall time, how many paths were proven optimal, and nDCG@10.
Writes ``eval/results/tsprank_decoders.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "results" / "tsprank_decoders"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a TSPRank model folder trained on BM25 lists of --depth")
    p.add_argument("--depth", type=int, default=30)
    p.add_argument("--queries", type=int, default=40)
    p.add_argument("--time-limit", type=float, default=5.0)
    p.add_argument("--decoders", nargs="+", default=["heuristic", "lkh", "milp"])
    args = p.parse_args()

    from tabulate import tabulate

    from rankkit.data import load_dataset
    from rankkit.evaluate import evaluate
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.tsprank import TSPRank
    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    test = load_dataset("beir/scifact", "test").subset(args.queries)
    bm25 = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", test, show_progress=False)(test.queries)
    bm25 = bm25.top_k(args.depth)
    rows = [{"decoder": "first stage (BM25)", "seconds": None, "proven_optimal": None,
             "ndcg@10": evaluate(bm25, test.qrels, "ndcg@10")["ndcg@10"]}]
    warm = TSPRank(test, model=args.model, depth=args.depth, show_progress=False, decoder="heuristic")
    warm(test.queries, bm25)  # every text embedded (the process-wide cache) outside the timings
    for decoder in args.decoders:
        stage = TSPRank(test, model=args.model, depth=args.depth, show_progress=False, decoder=decoder,
                        time_limit=args.time_limit)
        t = time.perf_counter()
        run = stage(test.queries, bm25)
        secs = time.perf_counter() - t
        proven = sum(c for k, c in stage.decode_stats.items() if "not proven" not in k)
        rows.append({"decoder": decoder, "seconds": round(secs, 2), "proven_optimal": proven,
                     "used": dict(stage.decode_stats), "ndcg@10": evaluate(run, test.qrels, "ndcg@10")["ndcg@10"]})
    md = tabulate([[r["decoder"], "" if r["seconds"] is None else r["seconds"],
                    "" if r["proven_optimal"] is None else f"{r['proven_optimal']} / {len(test.queries)}",
                    f"{r['ndcg@10']:.4f}"] for r in rows],
                  headers=["decoder", f"seconds ({len(test.queries)} queries)", "proven optimal", "nDCG@10"],
                  tablefmt="github")
    print(md)
    card = run_card(vars(args), None, None)
    write_json({"rows": rows, "run_card": card}, OUT.with_suffix(".json"))
    with atomic_write(OUT.with_suffix(".md")) as fh:
        fh.write(f"# TSPRank decoders on learned score matrices (n = {args.depth})\n\n{md}\n\n"
                 f"Model: `{Path(args.model).name}`; the first {len(test.queries)} SciFact test queries, BM25's top "
                 f"{args.depth}; MILP time limit {args.time_limit} s per query (out of time it returns its start "
                 f"path, the heuristic's). Machine: {card['machine'].get('cpu_model')} "
                 f"({card['machine'].get('cpus')} CPUs); {card['date']}; command: `{card['command']}`.\n")


if __name__ == "__main__":
    main()
