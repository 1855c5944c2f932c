"""Overhead of the Ray path against the plain path on this machine, same work, side by side.

    python eval/ray_overhead.py --ce models/ce-scifact-demo --queries 60 --docs 1000

Two jobs, each run the plain way (one process, torch on every core) and on a local Ray
cluster started here (``--workers`` single-thread workers, as ``rankkit ... --ray`` does):

1. BM25 top ``--depth`` >> the cross-encoder ``--ce`` at that depth on the first ``--queries``
   SciFact test queries (``rankkit retrieve --ray``);
2. the dense MiniLM index of the first ``--docs`` SciFact documents (``rankkit index --kind dense --ray``).

Wall times are end to end (the Ray side includes starting the cluster and loading the models
in every worker, which a long job amortises); the runs and indexes are compared (max |score
difference|). Writes ``eval/results/ray_overhead.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pipeline_yaml(folder: Path, ce: str, depth: int) -> Path:
    path = folder / "bm25_ce.yaml"
    path.write_text(f"name: bm25>>ce\nstages:\n  - bm25: {{k1: 0.9, b: 0.4, hits: {depth}}}\n"
                    f"  - cross_encoder: {{model: {Path(ce).resolve()}, depth: {depth}, precision: fp32, "
                    f"backend: torch}}\n")
    return path


def _slice_corpus(src: Path, out: Path, docs: int) -> Path:
    """A BEIR folder with the first ``docs`` documents of ``src`` (queries and qrels copied)."""
    out.mkdir(parents=True)
    with open(src / "corpus.jsonl") as fh, open(out / "corpus.jsonl", "w") as dst:
        for i, line in enumerate(fh):
            if i == docs:
                break
            dst.write(line)
    (out / "queries.jsonl").write_text((src / "queries.jsonl").read_text())
    (out / "qrels").mkdir()
    (out / "qrels" / "test.tsv").write_text((src / "qrels" / "test.tsv").read_text())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(os.environ.get("RANKKIT_DATA_DIR", "../shared/data"),
                                                        "beir", "scifact"))
    parser.add_argument("--ce", default="models/ce-scifact-demo", help="a cross-encoder folder (make demo trains one)")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "eval" / "results" / "ray_overhead"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import numpy as np
    import torch

    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline
    from rankkit.retrieve.dense import Dense
    from rankkit.runcard import run_card, write_json
    from rankkit.scale.ray_backend import RayPipeline, RaySettings
    from rankkit.scale.ray_encode import build_dense_index_on_ray

    threads = torch.get_num_threads()
    work = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    os.environ["RANKKIT_CACHE_DIR"] = str(work / "cache")  # cold caches for both paths (each gets its own below)
    data = Path(args.data)
    ds = load_dataset(data, split="test")
    queries = ds.queries[: args.queries]
    yaml = _pipeline_yaml(work, args.ce, args.depth)
    Pipeline.from_yaml(yaml, ds, show_progress=False).stages[0](queries[:1])  # the Lucene index, built once for both
    settings = RaySettings(workers=args.workers, block_size=args.block_size)
    rows = []

    t0 = time.perf_counter()
    plain = Pipeline.from_yaml(yaml, ds, show_progress=False)(queries)
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_ray = RayPipeline(yaml, data, "test", settings, show_progress=False)(queries)
    ray_s = time.perf_counter() - t0
    diff = max(abs(plain[q][d] - on_ray[q][d]) for q in plain for d in plain[q])
    same_order = all([d for d, _ in plain.ranked(q)] == [d for d, _ in on_ray.ranked(q)] for q in plain)
    pairs = args.queries * args.depth
    rows.append({"job": f"BM25 top {args.depth} >> CE, {args.queries} queries ({pairs} pairs)",
                 "plain_s": round(plain_s, 1), "ray_s": round(ray_s, 1), "ratio": round(ray_s / plain_s, 2),
                 "max_abs_diff": diff, "same_ranking": same_order})

    corpus = _slice_corpus(data, work / "corpus", args.docs)
    cds = load_dataset(corpus, split="test")
    opts = {"max_length": 256, "precision": "fp32", "backend": "torch", "show_progress": False}
    t0 = time.perf_counter()
    local = Dense(cds, cache_dir=str(work / "dense-plain"), **opts)
    plain_index = local.index
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray_index = build_dense_index_on_ray(Dense(cds, cache_dir=str(work / "dense-ray"), **opts),
                                         RaySettings(workers=args.workers, block_size=128), show_progress=False)
    ray_s = time.perf_counter() - t0
    assert plain_index.docids == ray_index.docids
    diff = float(np.abs(np.asarray(plain_index.embeddings) - np.asarray(ray_index.embeddings)).max())
    rows.append({"job": f"dense MiniLM index, {args.docs} docs", "plain_s": round(plain_s, 1),
                 "ray_s": round(ray_s, 1), "ratio": round(ray_s / plain_s, 2), "max_abs_diff": diff,
                 "same_ranking": None})

    card = run_card({"args": vars(args), "plain_threads": threads, "ray_workers": args.workers,
                     "ray_threads_per_worker": 1}, None, None, command=" ".join(["python", *sys.argv]))
    out = Path(args.out)
    write_json({"card": card, "rows": rows}, out.with_suffix(".json"))
    cpu = card["machine"].get("cpu_model", "?")
    lines = ["# Ray path vs plain path, same work", "",
             f"{cpu}, {card['machine']['cpus']} cores, {card['date']}; plain: one process, torch {threads} threads; "
             f"Ray: a local cluster started by the script, {args.workers} workers x 1 thread. Wall times end to end "
             "(Ray: cluster start and model loading in every worker included).", "",
             f"Command: `{card['command']}`", "",
             "| job | plain s | Ray s | Ray / plain | max abs score diff | same ranking |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['job']} | {r['plain_s']} | {r['ray_s']} | {r['ratio']} | {r['max_abs_diff']:.2e} | "
              f"{'-' if r['same_ranking'] is None else r['same_ranking']} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
