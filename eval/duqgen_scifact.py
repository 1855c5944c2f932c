"""DUQGen on SciFact: a LoRA cross-encoder trained on synthetic queries only, vs uniform sampling and zero-shot.

    RANKKIT_DATA_DIR=../shared/data python eval/duqgen_scifact.py                      # everything
    RANKKIT_DATA_DIR=../shared/data python eval/duqgen_scifact.py --modes uniform      # one arm (a 2nd process)
    RANKKIT_DATA_DIR=../shared/data python eval/duqgen_scifact.py --report-only        # the report from the caches

SciFact's train queries and qrels are never read. ``pipelines/duqgen_scifact.yaml`` builds
the synthetic set from the corpus (N documents, K clusters, SmolLM2-135M-Instruct, the
3 hand-written few-shot examples of ``pipelines/fewshot/scifact.jsonl``, none from SciFact);
``--modes uniform`` builds the ablation with ``sample.mode: uniform`` (the same N and
generator, documents drawn uniformly). A LoRA cross-encoder
(``pipelines/train_ce_duqgen.yaml``) is trained on each set with every seed; 10% of the
synthetic queries are held out and pick the interpolation weight with BM25 on their BM25
top 100 (never test). Each model reranks BM25's top 100 for SciFact test (300 queries):
CE alone and interpolated. Baselines: BM25, and BM25 >> untuned all-MiniLM-L6-v2 (dense).
Reports nDCG@10 mean +- std over seeds and paired t-tests of the seed-averaged per-query
nDCG@10 (Holm over every test), 20 generated queries beside their documents, and the CPU
time of every stage. Results: ``eval/results/duqgen_scifact.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYNTH = ROOT / "pipelines" / "duqgen_scifact.yaml"
TRAIN = ROOT / "pipelines" / "train_ce_duqgen.yaml"
OUT = ROOT / "eval" / "results" / "duqgen_scifact"
METRIC = "ndcg@10"
log = logging.getLogger("duqgen_scifact")


def synth(mode: str, work: Path, quiet: bool) -> Path:
    """The synthetic folder of ``mode`` (built once; a killed build continues its generation)."""
    from rankkit.config import load_config
    from rankkit.synth import DUQGenConfig, run_duqgen

    folder = work / f"synth-{mode}"
    if not (folder / "duqgen_card.json").is_file():
        cfg, base = load_config(DUQGenConfig, SYNTH, {"sample.mode": mode, "output": str(folder)})
        run_duqgen(cfg, base, show_progress=not quiet)
    return folder


def train(mode: str, folder: Path, seed: int, work: Path, quiet: bool) -> Path:
    """The LoRA CE trained on ``folder`` with ``seed`` (trained once)."""
    from rankkit.train.config import load_train_config
    from rankkit.train.loop import train_reranker

    out = work / f"ce-{mode}-s{seed}"
    if not (out / "train_card.json").is_file():
        cfg, base = load_train_config(TRAIN, {"seed": seed, "output": str(out), "data.dataset": str(folder),
                                              "data.first_stage": str(folder / "negatives.trec")})
        train_reranker(cfg, base, show_progress=not quiet)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--modes", nargs="+", default=["duqgen", "uniform"], choices=["duqgen", "uniform"])
    p.add_argument("--work", default=str(ROOT / "models" / "duqgen-eval"), help="folders, models and cached runs")
    p.add_argument("--report-only", action="store_true", help="write the report from what --work holds")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("accelerate", "httpx", "rankkit.retrieve", "rankkit.index"):
        logging.getLogger(name).setLevel(logging.WARNING)
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.cross_encoder import CrossEncoder
    from rankkit.retrieve.dense import Dense
    from rankkit.types import Run

    test = load_dataset("beir/scifact", "test")
    bm25 = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", test, show_progress=False)(test.queries).top_k(100)
    dense_file = work / "bm25-minilm-test.trec"
    if not dense_file.is_file() and not args.report_only:
        Dense(test, rerank="always", show_progress=not args.quiet)(test.queries, bm25).to_trec(dense_file, tag="minilm")
    if args.report_only:
        return report(args, work, test, bm25, started)
    for mode in args.modes:
        folder = synth(mode, work, args.quiet)
        for seed in args.seeds:
            model = train(mode, folder, seed, work, args.quiet)
            run_file = work / f"ce-{mode}-s{seed}-test.trec"
            if not run_file.is_file():
                t = time.perf_counter()
                CrossEncoder(test, model=str(model), depth=100, keep_tail=False,
                             show_progress=not args.quiet)(test.queries, bm25).to_trec(run_file, tag=model.name)
                (work / f"ce-{mode}-s{seed}-test.seconds").write_text(f"{time.perf_counter() - t:.1f}\n")
            log.info("%s seed %d: %s", mode, seed, run_file)
    if set(args.modes) == {"duqgen", "uniform"}:
        report(args, work, test, bm25, started)


def report(args: argparse.Namespace, work: Path, test: Any, bm25: Any, started: float) -> None:
    """Means +- std over seeds and paired t-tests (Holm) from the cached runs; writes the results."""
    from scipy.stats import ttest_rel
    from tabulate import tabulate

    from rankkit.evaluate import _adjust, evaluate
    from rankkit.rerank.interpolate import interpolate
    from rankkit.runcard import run_card, write_json
    from rankkit.synth.duqgen import sampled_preview
    from rankkit.trec import atomic_write
    from rankkit.types import Run

    def per_query(run: Run) -> dict[str, float]:
        return evaluate(run, test.qrels, METRIC, per_query=True)[METRIC]

    rows: dict[str, dict[int, dict[str, float]]] = {"BM25": {0: per_query(bm25)},
                                                    "BM25 >> MiniLM (untuned, zero-shot)": {
                                                        0: per_query(Run.from_trec(work / "bm25-minilm-test.trec"))}}
    cards: dict[str, Any] = {}
    weights: dict[str, list[float]] = {}
    train_s: dict[str, list[float]] = {}
    score_s: dict[str, list[float]] = {}
    for mode in ("duqgen", "uniform"):
        cards[mode] = json.loads((work / f"synth-{mode}" / "duqgen_card.json").read_text())
        for seed in args.seeds:
            ce = Run.from_trec(work / f"ce-{mode}-s{seed}-test.trec")
            card = json.loads((work / f"ce-{mode}-s{seed}" / "train_card.json").read_text())
            w = (card.get("interpolation") or {}).get("weight")
            rows.setdefault(f"CE ({mode})", {})[seed] = per_query(ce)
            rows.setdefault(f"CE ({mode}) + BM25", {})[seed] = per_query(interpolate(bm25, ce, float(w)))
            weights.setdefault(mode, []).append(float(w))
            train_s.setdefault(mode, []).append(float(card["wall_time_s"]))
            score_s.setdefault(mode, []).append(float((work / f"ce-{mode}-s{seed}-test.seconds").read_text()))
    qids = sorted(rows["BM25"][0])
    avg = {r: {q: float(np.mean([s[q] for s in seeds.values()])) for q in qids} for r, seeds in rows.items()}
    means = {r: [float(np.mean([s[q] for q in qids])) for s in seeds.values()] for r, seeds in rows.items()}
    pairs = [(r, ref) for r in rows if r.startswith("CE") for ref in ("BM25", "BM25 >> MiniLM (untuned, zero-shot)")]
    pairs += [("CE (duqgen)", "CE (uniform)"), ("CE (duqgen) + BM25", "CE (uniform) + BM25")]
    pv = []
    for a, b in pairs:
        p = ttest_rel([avg[a][q] for q in qids], [avg[b][q] for q in qids]).pvalue
        pv.append(1.0 if np.isnan(p) else float(p))
    tests = [{"row": a, "vs": b, "diff": float(np.mean(means[a]) - np.mean(means[b])), "p_holm": ph}
             for (a, b), ph in zip(pairs, _adjust(pv, "holm"))]
    table = [[r, len(m), f"{np.mean(m):.4f} ± {np.std(m, ddof=1) if len(m) > 1 else 0.0:.4f}",
              ", ".join(f"{x:.4f}" for x in m)] for r, m in means.items()]
    md = tabulate(table, headers=["SciFact test (300 queries), BM25 top 100", "seeds", "nDCG@10 mean ± std",
                                  "per seed"], tablefmt="github")
    tmd = tabulate([[t["row"], t["vs"], f"{t['diff']:+.4f}", f"{t['p_holm']:.2g}"] for t in tests],
                   headers=["row", "vs", "difference", "p (paired t, Holm)"], tablefmt="github")
    print(md, "\n\n", tmd, sep="")
    preview = sampled_preview(work / "synth-duqgen", 20, 240)
    card = run_card(vars(args), args.seeds[0], time.perf_counter() - started)
    write_json({"rows": {r: {"per_seed": m, "mean": float(np.mean(m))} for r, m in means.items()}, "tests": tests,
                "interpolation_weights": weights, "train_s": train_s, "test_scoring_s": score_s,
                "synth_cards": {m: {k: c[k] for k in ("config", "queries", "generation", "stage_seconds",
                                                        "eligible_docs", "cluster_sizes", "elbow")}
                                for m, c in cards.items()},
                "preview": preview, "run_card": card}, OUT.with_suffix(".json"))
    with atomic_write(OUT.with_suffix(".md")) as fh:
        fh.write(f"# DUQGen on SciFact (no SciFact training queries or labels)\n\n{md}\n\n{tmd}\n\n")
        c = cards["duqgen"]
        cfg = c["config"]
        fh.write(f"N = {cfg['sample']['n']} sampled documents, K = {cfg['clusters']['k']} clusters, "
                 f"generator {cfg['generate']['model']} (greedy, {cfg['generate']['doc_words']} words per "
                 f"document, max {cfg['generate']['max_new_tokens']} new tokens), few-shot: 3 hand-written "
                 f"examples ({cfg['generate']['fewshot']}), not from SciFact; embedder {cfg['embed']['model']}; "
                 f"negatives: the first 4 of the last 8 of the dense top 100.\n\n")
        for mode in ("duqgen", "uniform"):
            g, s = cards[mode]["generation"], cards[mode]["stage_seconds"]
            fh.write(f"- {mode}: {cards[mode]['queries']} queries kept of {cfg['sample']['n']} documents "
                     f"(dropped: {({k: v for k, v in g['reasons'].items() if k != 'ok'})}); "
                     f"{g['tokens_per_second']} generated tokens/s; stage seconds {s}; CE training "
                     f"{np.mean(train_s[mode]):.0f} s and test scoring {np.mean(score_s[mode]):.0f} s per seed; "
                     f"interpolation weights (dev) {weights[mode]}\n")
        if cards["duqgen"].get("elbow"):
            e = cards["duqgen"]["elbow"]
            fh.write(f"\nElbow (SSE of squared cosine distance) over K = {e['k']}: knee at K = {e['knee']} "
                     f"(reported only; K = {cfg['clusters']['k']} was used).\n")
        fh.write("\n## 20 generated queries (DUQGen sample) beside their documents\n\n| query | document (start) |\n"
                 "|---|---|\n")
        for item in preview:
            doc = item["document"].replace("|", "/").replace("\n", " ")
            fh.write(f"| {item['query'].replace('|', '/')} | {item['docid']}: {doc}... |\n")
        fh.write(f"\nMachine: {card['machine'].get('cpu_model')} ({card['machine'].get('cpus')} CPUs); "
                 f"{card['date']}; command: `{card['command']}`.\n")


if __name__ == "__main__":
    main()
