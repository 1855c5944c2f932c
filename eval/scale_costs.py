"""Per-document and per-pair costs on this machine, and the MS MARCO projection of docs/scaling.md.

    python eval/scale_costs.py --ce models/ce-scifact-demo

Measures, in one process with torch on every core (fp32, batch 64):

- document encoding with MiniLM (all-MiniLM-L6-v2) at ``--max-length`` tokens: SciFact
  documents cut to that length (nearly all are longer), a stand-in for MS MARCO passages;
- query encoding (SciFact test queries);
- cross-encoder scoring of (query, document) pairs at ``--max-length`` tokens with ``--ce``.

Each rate is the median of ``--repeats`` timed runs after one warm-up. The projection for
MS MARCO passage (8,841,823 passages; 6,980 dev queries x top 100 reranked) on W workers of
this machine follows from the rates; projections for GPUs take the GPU's rates as inputs
(``--gpu-docs-per-s``, ``--gpu-pairs-per-s``: from ``eval/gpu_check.sh``) and are left out
when they are not given. Writes ``eval/results/scale_costs.{json,md}``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MSMARCO_DOCS = 8_841_823
MSMARCO_DEV_QUERIES = 6_980
RERANK_DEPTH = 100


def _rate(fn, items: int, repeats: int) -> float:
    """Items per second: median over ``repeats`` timed calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return items / statistics.median(times)


def _hours(items: float, rate: float, workers: int) -> float:
    return items / (rate * workers) / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(os.environ.get("RANKKIT_DATA_DIR", "../shared/data"),
                                                        "beir", "scifact"))
    parser.add_argument("--ce", default="models/ce-scifact-demo")
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-docs-per-s", type=float, default=None)
    parser.add_argument("--gpu-pairs-per-s", type=float, default=None)
    parser.add_argument("--gpu-name", default=None)
    parser.add_argument("--out", default=str(ROOT / "eval" / "results" / "scale_costs"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from rankkit.data import load_dataset
    from rankkit.rerank.ce_model import CrossEncoderModel
    from rankkit.retrieve.dense import Encoder
    from rankkit.runcard import run_card, write_json

    ds = load_dataset(Path(args.data), split="test")
    docs = list(itertools.islice(ds.docs_iter(), args.docs))
    queries = [q.text for q in ds.queries]
    enc = Encoder(max_length=args.max_length, batch_size=64, precision="fp32", backend="torch")
    doc_rate = _rate(lambda: enc.encode_docs(docs), len(docs), args.repeats)
    query_rate = _rate(lambda: enc.encode_queries(queries), len(queries), args.repeats)
    ce = CrossEncoderModel.load(str(Path(args.ce).resolve()), merge=True).eval()
    qs = [queries[i % len(queries)] for i in range(args.pairs)]
    ds_text = [docs[i % len(docs)].contents for i in range(args.pairs)]
    pair_rate = _rate(lambda: ce.score(qs, ds_text, batch_size=64, max_length=args.max_length, device="cpu",
                                       backend="torch", precision="fp32"), args.pairs, args.repeats)
    threads = torch.get_num_threads()
    card = run_card({"args": vars(args), "torch_threads": threads}, None, None,
                    command=" ".join(["python", *sys.argv]))
    rates = {"doc_encode_per_s": round(doc_rate, 1), "query_encode_per_s": round(query_rate, 1),
             "ce_pairs_per_s": round(pair_rate, 1)}
    pairs_total = MSMARCO_DEV_QUERIES * RERANK_DEPTH
    proj = []
    for workers in (1, 8, 64):
        proj.append({"hardware": f"{workers} x this machine ({threads} threads)", "workers": workers,
                     "encode_corpus_h": round(_hours(MSMARCO_DOCS, doc_rate, workers), 2),
                     "rerank_dev_h": round(_hours(pairs_total, pair_rate, workers), 2), "source": "measured rates"})
    if args.gpu_docs_per_s and args.gpu_pairs_per_s:
        for workers in (1, 8, 64):
            proj.append({"hardware": f"{workers} x {args.gpu_name or 'GPU'}", "workers": workers,
                         "encode_corpus_h": round(_hours(MSMARCO_DOCS, args.gpu_docs_per_s, workers), 3),
                         "rerank_dev_h": round(_hours(pairs_total, args.gpu_pairs_per_s, workers), 3),
                         "source": "rates from eval/gpu_check.sh"})
    write_json({"card": card, "rates": rates, "projection": proj}, Path(args.out).with_suffix(".json"))
    m = card["machine"]
    lines = ["# Per-item costs on this machine and the MS MARCO projection", "",
             f"{m.get('cpu_model', '?')}, {m['cpus']} cores, torch {threads} threads, fp32, {card['date']}.",
             f"Command: `{card['command']}`", "",
             "| item | rate | cost |", "|---|---|---|",
             f"| MiniLM document encoding, {args.max_length} tokens | {doc_rate:.1f} docs/s | "
             f"{1000 / doc_rate:.1f} ms/doc |",
             f"| MiniLM query encoding | {query_rate:.1f} queries/s | {1000 / query_rate:.2f} ms/query |",
             f"| cross-encoder ({Path(args.ce).name}), {args.max_length} tokens | {pair_rate:.1f} pairs/s | "
             f"{1000 / pair_rate:.1f} ms/pair |", "",
             f"Projection: MS MARCO passage, {MSMARCO_DOCS:,} passages encoded once; {MSMARCO_DEV_QUERIES:,} dev "
             f"queries x top {RERANK_DEPTH} = {pairs_total:,} pairs reranked. Linear scaling over workers "
             "(Ray blocks are independent; start-up and merging left out).", "",
             "| hardware | encode corpus (h) | rerank dev (h) | rates |", "|---|---|---|---|"]
    lines += [f"| {p['hardware']} | {p['encode_corpus_h']} | {p['rerank_dev_h']} | {p['source']} |" for p in proj]
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
