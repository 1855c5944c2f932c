"""One benchmark script, peers side by side on the same machine, data and settings.

    python eval/benchmark.py                       # SciFact test, BM25 and dense sections
    python eval/benchmark.py --skip-dense          # BM25 only (seconds, not minutes)
    python eval/benchmark.py --limit-docs 1000     # dense encoding on a corpus slice

BM25: rankkit vs ``pyserini`` ``LuceneSearcher.batch_search`` (same index, threads)
vs ``bm25s``. Dense: rankkit's encoder + FAISS vs ``SentenceTransformer.encode`` +
``faiss.IndexFlatIP``. Results (with a run card: machine, versions, date, command) go
to ``eval/results/benchmark_<dataset>.json`` and a Markdown summary beside it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_bm25 import bench_bm25  # noqa: E402
from bench_dense import bench_dense  # noqa: E402

import rankkit  # noqa: E402
from rankkit.runcard import run_card, write_json  # noqa: E402
from rankkit.trec import atomic_write  # noqa: E402


def _markdown(result: dict) -> str:
    lines = [f"# Benchmark on {result['dataset']}", "", f"Date: {result['run_card']['date']}  ",
             f"Command: `{result['run_card']['command']}`  ",
             f"Machine: {result['run_card']['machine'].get('cpu_model', '?')}, "
             f"{result['run_card']['machine'].get('cpus')} cores", ""]
    bm = result.get("bm25")
    if bm:
        lines += [f"## BM25 ({bm['queries']} queries, {bm['docs']} docs, {bm['threads']} threads, "
                  f"{bm['hits']} hits, best of {bm['repeats']})", "",
                  "| searcher | queries/s | nDCG@10 | R@100 |", "|---|---|---|---|"]
        for name, qps in bm["queries_per_s"].items():
            eff = bm["effectiveness"].get(name)
            cells = f"{eff['ndcg@10']:.4f} | {eff['recall@100']:.4f}" if eff else "(no run read) | "
            lines.append(f"| {name} | {qps:.1f} | {cells} |")
        lines += ["", f"rankkit / pyserini batch_search: {bm['ratio_rankkit_vs_pyserini_batch_search']:.3f}  ",
                  f"rankkit / pyserini batch_search+extract: "
                  f"{bm['ratio_rankkit_vs_pyserini_batch_search+extract']:.3f}  ",
                  f"rankkit / bm25s: {bm['ratio_rankkit_vs_bm25s']:.3f}", ""]
    de = result.get("dense")
    if de:
        lines += [f"## Dense ({de['model']}, {de['docs']} docs, max_length {de['max_length']}, "
                  f"batch {de['batch_size']}, {de['device']} {de['precision']})", "",
                  "| encoder | docs/s | nDCG@10 |", "|---|---|---|",
                  f"| rankkit | {de['rankkit_docs_per_s']:.1f} | {de['rankkit_ndcg@10']:.4f} |",
                  f"| sentence-transformers + faiss | {de['st_docs_per_s']:.1f} | {de['st_ndcg@10']:.4f} |", "",
                  f"docs/s ratio: {de['docs_per_s_ratio']:.3f}; |nDCG@10 diff|: {de['ndcg@10_abs_diff']:.2e}; "
                  f"max |embedding diff|: {de['max_abs_embedding_diff']:.2e}", ""]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmarks and write ``eval/results/benchmark_<dataset>.{json,md}``."""
    parser = argparse.ArgumentParser(description="rankkit side-by-side benchmarks")
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dense-repeats", type=int, default=1)
    parser.add_argument("--limit-docs", type=int, default=None, help="dense: encode only the first N docs")
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--skip-bm25", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("faiss.loader", "sentence_transformers", "ir_datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    t0 = time.perf_counter()
    dataset = rankkit.load_dataset(args.dataset)
    result: dict = {"dataset": dataset.name}
    if not args.skip_bm25:
        result["bm25"] = bench_bm25(dataset, threads=args.threads, repeats=args.repeats)
    if not args.skip_dense:
        result["dense"] = bench_dense(dataset, repeats=args.dense_repeats, limit_docs=args.limit_docs)
    result["run_card"] = run_card(config=vars(args), wall_time_s=time.perf_counter() - t0,
                                  command="python " + " ".join(sys.argv))
    stem = "benchmark_" + dataset.name.replace("/", "_")
    write_json(result, Path(args.out) / f"{stem}.json")
    with atomic_write(Path(args.out) / f"{stem}.md") as fh:
        fh.write(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
