"""Bi-encoder experiment: all-MiniLM-L6-v2 fine-tuned with LoRA + InfoNCE on SciFact train vs the untuned model.

For each seed, trains ``pipelines/train_bi_scifact.yaml`` (BM25 hard negatives, 10% of the
training queries held out for checkpoint selection) with ``rankkit train reranker``'s loop,
then evaluates on SciFact *test* (never used in training), both ways the dense stage runs:

1. as a FAISS retriever over the whole corpus (flat index, top 100);
2. as a reranker of BM25's top 100.

Reports nDCG@10 and R@100 (means over seeds; per-seed values), a paired Student t-test of
the seed-averaged per-query values against the untuned model in the same setting, Holm
correction over the rows of each metric, and the training wall time per seed::

    python eval/bi_encoder_scifact.py --seeds 42 43 44          # --reuse: evaluate trained folders again

Writes ``eval/results/bi_encoder_scifact.{json,md}`` (machine, CPU model, versions, date, command).
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
CONFIG = ROOT / "pipelines" / "train_bi_scifact.yaml"
METRICS = ["ndcg@10", "recall@100"]


def _per_query(run: Any, qrels: Any) -> dict[str, dict[str, float]]:
    from rankkit.evaluate import evaluate

    return evaluate(run, qrels, METRICS, per_query=True)


def _systems(model: str, test: Any, bm25: Any) -> dict[str, Any]:
    """The two settings for one model: FAISS retrieval (top 100) and BM25 top-100 reranking."""
    from rankkit.retrieve.dense import Dense

    retriever = Dense(test, model=model, hits=100, show_progress=False)
    reranker = Dense(test, model=model, rerank="always", show_progress=False)
    return {"dense": retriever(test.queries), "bm25>>dense": reranker(test.queries, bm25)}


def main() -> None:
    from scipy.stats import ttest_rel
    from tabulate import tabulate

    import rankkit
    from rankkit.evaluate import _adjust
    from rankkit.models import MINILM_ID
    from rankkit.pipeline import Pipeline
    from rankkit.runcard import run_card, write_json
    from rankkit.train.config import load_train_config
    from rankkit.train.loop import train_reranker
    from rankkit.trec import atomic_write

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    ap.add_argument("--models", default=str(ROOT / "models"), help="where the trained folders go")
    ap.add_argument("--max-steps", type=int, default=None, help="cap training (smoke runs)")
    ap.add_argument("--reuse", action="store_true", help="evaluate already trained folders instead of retraining")
    ap.add_argument("--output", default=str(ROOT / "eval" / "results" / "bi_encoder_scifact"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.perf_counter()

    test = rankkit.load_dataset("beir/scifact/test")
    bm25 = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", test)(test.queries).top_k(100)
    qids = sorted(test.qrels)
    untuned = {k: _per_query(r, test.qrels) for k, r in _systems(MINILM_ID, test, bm25).items()}
    trained: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        overrides: dict[str, Any] = {"seed": seed}
        if args.max_steps:
            overrides["max_steps"] = args.max_steps
        cfg, base = load_train_config(CONFIG, overrides)
        cfg.output = str(Path(args.models) / f"bi-scifact-s{seed}")
        card_file = Path(cfg.output) / "train_card.json"
        if not (args.reuse and card_file.is_file()):
            train_reranker(cfg, base)
        card = json.loads(card_file.read_text())
        runs = _systems(cfg.output, test, bm25)
        trained[seed] = {"per_query": {k: _per_query(r, test.qrels) for k, r in runs.items()},
                         "train_seconds": card["wall_time_s"], "steps": card["steps"],
                         "best_dev_ndcg@10": card["best_dev"], "machine": card["machine"].get("cpu_model")}

    rows: list[dict[str, Any]] = []
    for setting in ("dense", "bm25>>dense"):
        base_pq = untuned[setting]
        rows.append({"row": f"untuned MiniLM: {setting}", "setting": setting, "seeds": 1,
                     "mean": {m: float(np.mean([base_pq[m][q] for q in qids])) for m in METRICS}})
        avg = {m: {q: float(np.mean([s["per_query"][setting][m][q] for s in trained.values()])) for q in qids}
               for m in METRICS}
        per_seed = {m: [float(np.mean([s["per_query"][setting][m][q] for q in qids])) for s in trained.values()]
                    for m in METRICS}
        p = {m: float(ttest_rel([avg[m][q] for q in qids], [base_pq[m][q] for q in qids]).pvalue) for m in METRICS}
        rows.append({"row": f"LoRA + InfoNCE: {setting}", "setting": setting, "seeds": len(trained),
                     "mean": {m: float(np.mean(per_seed[m])) for m in METRICS}, "per_seed": per_seed,
                     "std": {m: float(np.std(per_seed[m], ddof=1)) if len(per_seed[m]) > 1 else 0.0
                             for m in METRICS},
                     "p": {m: 1.0 if np.isnan(v) else v for m, v in p.items()}})
    tested = [r for r in rows if "p" in r]
    for m in METRICS:
        for r, ph in zip(tested, _adjust([r["p"][m] for r in tested], "holm")):
            r.setdefault("p_holm", {})[m] = ph
    table = []
    for r in rows:
        cells = [r["row"], r["seeds"]]
        for m in METRICS:
            cell = f"{r['mean'][m]:.4f}"
            if "p_holm" in r:
                cell += f" ± {r['std'][m]:.4f} (p={r['p_holm'][m]:.2g})"
            cells.append(cell)
        table.append(cells)
    headers = ["SciFact test (300 queries)", "seeds", *[f"{m} (p vs untuned, Holm)" for m in METRICS]]
    md = tabulate(table, headers=headers, tablefmt="github")
    train_s = [s["train_seconds"] for s in trained.values()]
    card = run_card(json.loads(json.dumps(vars(args))), None, time.perf_counter() - t0)
    result = {"rows": rows, "queries": len(qids), "config": str(CONFIG.relative_to(ROOT)),
              "training": {str(k): {kk: v for kk, v in s.items() if kk != "per_query"} for k, s in trained.items()},
              "run_card": card}
    out = Path(args.output)
    write_json(result, out.with_suffix(".json"))
    with atomic_write(out.with_suffix(".md")) as fh:
        fh.write(md + "\n\n")
        fh.write(f"Training wall time per seed (s): {', '.join(f'{s:.0f}' for s in train_s)}; "
                 f"machine: {card['machine'].get('cpu_model')} ({card['machine'].get('cpus')} CPUs), "
                 f"{card['date']}; command: `{card['command']}`.\n")
        fh.write("p: paired Student t-test of the seed-averaged per-query values against the untuned model in the "
                 "same setting, Holm-corrected over the two settings of each metric.\n")
    print(md)


if __name__ == "__main__":
    main()
