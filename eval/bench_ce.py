"""Side-by-side benchmark: rankkit cross-encoder scoring vs sentence-transformers ``CrossEncoder.predict``.

    python eval/bench_ce.py                                   # 50 SciFact test queries x BM25 top 20
    python eval/bench_ce.py --num-queries 2 --depth 3 --rounds 1 --output /tmp/bench_ce_smoke

One sequence-classification model (the offline MiniLM backbone with a fresh one-logit
classifier, seed 0) is written once to a temporary folder with
:meth:`CrossEncoderModel.save`; both sides load that same folder: rankkit with
:meth:`CrossEncoderModel.load`, sentence-transformers with ``CrossEncoder(folder)``.
The pairs are the first ``--num-queries`` SciFact test queries, each with its BM25
top ``--depth`` documents (``pipelines/bm25.yaml``; document text is
``Document.contents``).

Equality: both sides return raw logits (sentence-transformers' default sigmoid for a
one-label model is replaced by ``torch.nn.Identity``), the same ``max_length`` and
batch size; the maximum absolute score difference over all pairs is reported (bar:
<= 1e-5), and whether every query ranks its documents in the same order.

Speed: after one warm-up batch each, ``--rounds`` rounds alternate the sides (rankkit,
sentence-transformers, rankkit, sentence-transformers, ...) in this one process, each
scoring every pair; pairs/s per round, the median per side and the ratio of the medians
(rankkit / sentence-transformers) are reported. torch keeps its default thread count.

Results (with a run card: command, machine, versions, date) go to
``<output>.json`` and a Markdown table to ``<output>.md`` (default
``eval/results/bench_ce_scifact``).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

log = logging.getLogger("bench_ce")


def _pairs(dataset: Any, num_queries: int, depth: int) -> tuple[list[str], list[str], list[tuple[str, str]], list[int]]:
    """Query texts, document texts, ``(qid, docid)`` keys and per-query pair counts, grouped by query in BM25 order."""
    from rankkit.pipeline import Pipeline

    queries = dataset.queries[:num_queries]
    run = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", dataset, show_progress=False)(queries)
    qtexts: list[str] = []
    dtexts: list[str] = []
    keys: list[tuple[str, str]] = []
    sizes: list[int] = []
    for q in queries:
        docids = [d for d, _ in run.ranked(q.qid)[:depth]] if q.qid in run else []
        found = dataset.docs(docids)
        for d in docids:
            qtexts.append(q.text)
            dtexts.append(found[d].contents)
            keys.append((q.qid, d))
        sizes.append(len(docids))
    return qtexts, dtexts, keys, sizes


def _rank_order(scores: np.ndarray, sizes: list[int]) -> list[list[int]]:
    """Per query, the positions of its pairs sorted by descending score (ties by input order)."""
    out, start = [], 0
    for n in sizes:
        out.append(np.argsort(-scores[start:start + n], kind="stable").tolist())
        start += n
    return out


def _rankings_agree(a: np.ndarray, b: np.ndarray, sizes: list[int], tol: float) -> tuple[int, int]:
    """Number of queries ranked differently, and of those where a swapped pair differs by more than ``tol``.

    A swap between two documents whose scores are within ``tol`` on both sides is a
    near-tie (the order is decided by float rounding), not a disagreement in substance.
    """
    differ = substantive = 0
    start = 0
    for ra, rb, n in zip(_rank_order(a, sizes), _rank_order(b, sizes), sizes, strict=True):
        if ra != rb:
            differ += 1
            pos_b = {p: i for i, p in enumerate(rb)}
            sa, sb = a[start:start + n], b[start:start + n]
            # pairs (x above y on side a) that side b puts the other way round
            swapped = ((ra[i], ra[j]) for i in range(n) for j in range(i + 1, n) if pos_b[ra[i]] > pos_b[ra[j]])
            if any(abs(sa[x] - sa[y]) > tol or abs(sb[x] - sb[y]) > tol for x, y in swapped):
                substantive += 1
        start += n
    return differ, substantive


def bench_ce(dataset: Any, num_queries: int = 50, depth: int = 20, max_length: int = 256, batch_size: int = 32,
             rounds: int = 3, device: str = "cpu", seed: int = 0, classifier_std: float | None = None,
             tol: float = 1e-5) -> dict[str, Any]:
    """Score the same pairs with rankkit and sentence-transformers; return equality and speed figures.

    ``classifier_std`` re-draws the fresh classifier's weights from N(0, std) (seeded), to give
    the logits a wider spread than the HF default init (std = ``initializer_range``, 0.02 for
    MiniLM), which leaves all scores within a few hundredths of each other.
    """
    import torch
    import transformers
    from sentence_transformers import CrossEncoder

    from rankkit.models import resolve_model
    from rankkit.rerank.ce_model import CrossEncoderModel

    qtexts, dtexts, keys, sizes = _pairs(dataset, num_queries, depth)
    if not keys:
        raise SystemExit("no (query, document) pairs: BM25 returned nothing for the chosen queries")
    pairs = [[q, d] for q, d in zip(qtexts, dtexts, strict=True)]
    n = len(pairs)
    log.info("%d pairs (%d queries x top %d)", n, len(sizes), depth)

    # The fresh classifier is reported as missing from the MiniLM checkpoint: expected, so keep it quiet.
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="bench_ce_") as tmp:
        folder = Path(tmp) / "ce"
        fresh = CrossEncoderModel.new(resolve_model("minilm"), head="hf", max_length=max_length, seed=seed)
        if classifier_std is not None:
            torch.manual_seed(seed)
            with torch.no_grad():
                fresh.encoder.classifier.weight.normal_(0.0, classifier_std)
        fresh.save(folder)
        del fresh
        ours = CrossEncoderModel.load(str(folder), max_length=max_length)
        peer = CrossEncoder(str(folder), device=device, max_length=max_length, activation_fn=torch.nn.Identity(),
                            local_files_only=True)
    ours.to(device).eval()
    identity = torch.nn.Identity()

    def run_rankkit() -> np.ndarray:
        return ours.score(qtexts, dtexts, batch_size=batch_size, max_length=max_length, device=device, precision="fp32")

    def run_st() -> np.ndarray:
        out = peer.predict(pairs, batch_size=batch_size, show_progress_bar=False, activation_fn=identity,
                           convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    # Warm-up: first-call costs (allocations, lazy imports, kernel selection) paid by neither timing.
    ours.score(qtexts[:batch_size], dtexts[:batch_size], batch_size=batch_size, max_length=max_length,
               device=device, precision="fp32")
    peer.predict(pairs[:batch_size], batch_size=batch_size, show_progress_bar=False, activation_fn=identity)

    sides = {"rankkit": run_rankkit, "sentence_transformers": run_st}
    seconds: dict[str, list[float]] = {s: [] for s in sides}
    scores: dict[str, list[np.ndarray]] = {s: [] for s in sides}
    order: list[str] = []
    for r in range(max(1, rounds)):
        for side, fn in sides.items():  # strictly alternating: rankkit, ST, rankkit, ST, ...
            sync()
            t = time.perf_counter()
            scores[side].append(fn())
            sync()
            seconds[side].append(time.perf_counter() - t)
            order.append(side)
            log.info("round %d %s: %d pairs in %.3f s (%.1f pairs/s)", r + 1, side, n, seconds[side][-1],
                     n / seconds[side][-1])

    pps = {s: [n / t for t in ts] for s, ts in seconds.items()}
    median = {s: statistics.median(v) for s, v in pps.items()}
    a, b = scores["rankkit"][0], scores["sentence_transformers"][0]
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    worst = int(np.argmax(diff))
    differ, substantive = _rankings_agree(a, b, sizes, tol)
    drift = {s: float(max(np.max(np.abs(x - v[0])) for x in v)) for s, v in scores.items()}
    seqcls_attn = {"rankkit": getattr(ours.encoder.config, "_attn_implementation", None),
                   "sentence_transformers": getattr(peer.model.config, "_attn_implementation", None)}
    return {
        "dataset": dataset.name, "queries": len(sizes), "depth": depth, "pairs": n, "max_length": max_length,
        "batch_size": batch_size, "rounds": max(1, rounds), "device": device, "precision": "fp32",
        "torch_threads": torch.get_num_threads(), "model": "minilm + BertForSequenceClassification head "
        f"(num_labels=1, seed {seed}" + (f", classifier std {classifier_std}" if classifier_std else "") + ")",
        "model_base": resolve_model("minilm"), "classifier_std": classifier_std,
        "attn_implementation": seqcls_attn, "st_activation_fn": type(peer.activation_fn).__name__,
        "st_max_seq_length": peer.max_seq_length,
        "round_order": order, "seconds": seconds, "pairs_per_s": pps, "median_pairs_per_s": median,
        "ratio_rankkit_vs_st": median["rankkit"] / median["sentence_transformers"],
        "max_abs_score_diff": float(diff.max()), "mean_abs_score_diff": float(diff.mean()),
        "max_abs_score_diff_over_score_std": float(diff.max() / a.std()) if a.std() > 0 else None,
        "max_abs_score_diff_pair": {"qid": keys[worst][0], "docid": keys[worst][1],
                                    "rankkit": float(a[worst]), "sentence_transformers": float(b[worst])},
        "score_tolerance": tol, "scores_within_tolerance": bool(diff.max() <= tol),
        "score_stats": {"min": float(a.min()), "max": float(a.max()), "std": float(a.std())},
        "rankings_identical": differ == 0, "queries_ranked_differently": differ,
        "queries_ranked_differently_beyond_tolerance": substantive,
        "max_abs_score_drift_across_rounds": drift,
    }


def _markdown(res: dict[str, Any]) -> str:
    card = res["run_card"]
    mach = card["machine"]
    per_round = {s: ", ".join(f"{v:.1f}" for v in vs) for s, vs in res["pairs_per_s"].items()}
    lines = [
        f"# Cross-encoder scoring on {res['dataset']}", "",
        f"{res['queries']} queries x BM25 top {res['depth']} = {res['pairs']} pairs; {res['model']}; "
        f"max_length {res['max_length']}, batch {res['batch_size']}, {res['device']} {res['precision']}, "
        f"{res['torch_threads']} torch threads, {res['rounds']} alternating rounds; {card['date']}.  ",
        f"Machine: {mach.get('cpu_model', '?')}, {mach.get('cpus')} cores, {mach.get('memory_gb')} GB"
        + (f", {mach['gpu']}" if mach.get("gpu") else "") + "; versions and the exact command in the JSON beside "
        "this file.", "",
        "| scorer | pairs/s (median) | pairs/s per round |", "|---|---|---|",
        f"| rankkit `CrossEncoderModel.score` | {res['median_pairs_per_s']['rankkit']:.1f} | "
        f"{per_round['rankkit']} |",
        f"| sentence-transformers `CrossEncoder.predict` | {res['median_pairs_per_s']['sentence_transformers']:.1f} "
        f"| {per_round['sentence_transformers']} |", "",
        f"pairs/s ratio (rankkit / sentence-transformers, medians): {res['ratio_rankkit_vs_st']:.3f}  ",
        f"max |score diff| (raw logits): {res['max_abs_score_diff']:.2e} (bar {res['score_tolerance']:.0e}; "
        f"scores span {res['score_stats']['min']:.3f} to {res['score_stats']['max']:.3f}, "
        f"std {res['score_stats']['std']:.3f}); "
        f"rankings identical: {'yes' if res['rankings_identical'] else 'no'} "
        f"({res['queries_ranked_differently']} of {res['queries']} queries differ, "
        f"{res['queries_ranked_differently_beyond_tolerance']} beyond near-ties)", "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Command line: run the benchmark and write ``<output>.json`` and ``<output>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--num-queries", type=int, default=50)
    parser.add_argument("--depth", type=int, default=20, help="BM25 documents per query")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="classifier initialisation")
    parser.add_argument("--classifier-std", type=float, default=None,
                        help="re-draw the classifier weights from N(0, std) (default: HF's init, std 0.02)")
    parser.add_argument("--output", default=str(HERE / "results" / "bench_ce_scifact"),
                        help="results path prefix (.json and .md are appended)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("sentence_transformers", "ir_datasets", "transformers", "httpx", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    shared = ROOT.parent / "shared" / "data"
    if not os.environ.get("RANKKIT_DATA_DIR") and shared.is_dir():
        os.environ["RANKKIT_DATA_DIR"] = str(shared)

    from rankkit.data import load_dataset
    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    t0 = time.perf_counter()
    result = bench_ce(load_dataset(args.dataset), num_queries=args.num_queries, depth=args.depth,
                      max_length=args.max_length, batch_size=args.batch_size, rounds=args.rounds,
                      device=args.device, seed=args.seed, classifier_std=args.classifier_std)
    result["run_card"] = run_card(config=vars(args), seed=args.seed, wall_time_s=time.perf_counter() - t0,
                                  command="python " + " ".join(sys.argv))
    write_json(result, args.output + ".json")
    md = _markdown(result)
    with atomic_write(args.output + ".md") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    main()
