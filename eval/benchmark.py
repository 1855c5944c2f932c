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
import json
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
    card = (result.get("bm25") or result["dense"])["run_card"]
    lines = [f"# Benchmark on {result['dataset']}", "",
             f"Machine: {card['machine'].get('cpu_model', '?')}, {card['machine'].get('cpus')} cores, "
             f"{card['machine'].get('memory_gb')} GB; versions and exact commands in the JSON beside this file.", ""]
    bm = result.get("bm25")
    if bm:
        lines += [f"## BM25 ({bm['queries']} queries, {bm['docs']} docs, {bm['threads']} threads, "
                  f"{bm['hits']} hits, median of {bm['repeats']} rounds; {bm['run_card']['date']})", "",
                  "| searcher | queries/s (median) | queries/s (best) | nDCG@10 | R@100 |", "|---|---|---|---|---|"]
        for name, qps in bm["queries_per_s"].items():
            eff = bm["effectiveness"].get(name)
            cells = f"{eff['ndcg@10']:.4f} | {eff['recall@100']:.4f}" if eff else "(no run read) | "
            lines.append(f"| {name} | {qps:.1f} | {bm['queries_per_s_best'][name]:.1f} | {cells} |")
        lines += ["", f"rankkit / pyserini batch_search: {bm['ratio_rankkit_vs_pyserini_batch_search']:.3f} "
                  f"(best rounds: {bm['ratio_best_rankkit_vs_pyserini_batch_search']:.3f})  ",
                  f"rankkit / pyserini batch_search+extract: "
                  f"{bm['ratio_rankkit_vs_pyserini_batch_search+extract']:.3f}  ",
                  f"rankkit / bm25s: {bm['ratio_rankkit_vs_bm25s']:.3f}", ""]
    de = result.get("dense")
    if de:
        lines += [f"## Dense ({de['model']}, {de['docs']} docs, max_length {de['max_length']}, "
                  f"batch {de['batch_size']}, {de['device']} {de['precision']}, {de['repeats']} alternating "
                  f"rounds; {de['run_card']['date']})", "",
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

    dataset = rankkit.load_dataset(args.dataset)
    stem = "benchmark_" + dataset.name.replace("/", "_")
    out_json = Path(args.out) / f"{stem}.json"
    # A skipped section keeps its previous figures (each section carries its own run card).
    result: dict = json.loads(out_json.read_text()) if out_json.exists() else {}
    result["dataset"] = dataset.name
    command = "python " + " ".join(sys.argv)
    sections = {"bm25": (args.skip_bm25, lambda: bench_bm25(dataset, threads=args.threads, repeats=args.repeats)),
                "dense": (args.skip_dense, lambda: bench_dense(dataset, repeats=args.dense_repeats,
                                                               limit_docs=args.limit_docs))}
    for name, (skip, fn) in sections.items():
        if skip:
            continue
        t0 = time.perf_counter()
        result[name] = fn()
        result[name]["run_card"] = run_card(config=vars(args), wall_time_s=time.perf_counter() - t0,
                                            command=command)
    write_json(result, out_json)
    with atomic_write(Path(args.out) / f"{stem}.md") as fh:
        fh.write(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
