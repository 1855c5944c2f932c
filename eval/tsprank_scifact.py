"""TSPRank on SciFact: heads over frozen MiniLM embeddings reranking BM25's top 10 / top 30, and after the LoRA CE.

    RANKKIT_DATA_DIR=../shared/data python eval/tsprank_scifact.py --ce models/ce-scifact
    RANKKIT_DATA_DIR=../shared/data python eval/tsprank_scifact.py --quick   # a smoke run, nothing written

Every arm trains through ``rankkit train reranker``'s loop from ``pipelines/tsprank_scifact.yaml``
(SciFact train, 10% of the queries held out as dev, the best epoch by dev nDCG@10 kept),
with the same features (``product``, ``cosine``, ``score``: the first stage's score),
epochs, batch and learning rate; only the head and the objective change:

- pointwise head + listwise softmax; pointwise head + RankNet (the baselines);
- TSPRank bilinear head + local loss; + hybrid (local / max-margin batches alternating).

Settings: BM25 top 10 and top 30 (the lists are the first stage's top ``k``, training and
test alike), and stacked after the LoRA cross-encoder (``--ce``): the CE reranks BM25's
top 30, its scores become the ``score`` feature, and the heads reorder that list.
Reports nDCG@10 on SciFact test (300 queries) mean +- std over seeds, and a paired t-test
of the seed-averaged per-query nDCG@10 against the setting's pointwise-softmax arm and
against the first stage (Holm over all rows). Results: ``eval/results/tsprank_scifact.{json,md}``.
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
CONFIG = ROOT / "pipelines" / "tsprank_scifact.yaml"
OUT = ROOT / "eval" / "results" / "tsprank_scifact"
log = logging.getLogger("tsprank_scifact")

ARMS = {"pointwise head, softmax": ("pointwise", "softmax"), "pointwise head, RankNet": ("pointwise", "ranknet"),
        "TSPRank local": ("bilinear", "tsp_local"), "TSPRank hybrid": ("bilinear", "tsp_hybrid"),
        # rankkit's option: the local loss in expectation over the order within each label (not the paper's)
        "TSPRank local, ties any": ("bilinear", "tsp_local-ties-any")}
DEFAULT_ARMS = list(ARMS)[:4]


def ce_runs(ce: str, work: Path) -> tuple[Path, Path]:
    """The CE's scores of BM25's top 30 on SciFact train and test, as TREC files (computed once)."""
    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.cross_encoder import CrossEncoder

    out = []
    for split in ("train", "test"):
        path = work / f"ce-top30-{split}.trec"
        if not path.is_file():
            ds = load_dataset("beir/scifact", split)
            bm25 = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", ds)(ds.queries)
            stage = CrossEncoder(ds, model=ce, depth=30, keep_tail=False)
            stage(ds.queries, bm25).to_trec(path, tag="ce")
        out.append(path)
    return out[0], out[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--settings", nargs="+", default=["bm25 top 10", "bm25 top 30", "ce top 30"])
    p.add_argument("--ce", help="the LoRA cross-encoder folder (needed by the 'ce top 30' setting)")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument("--margin-decoder", default=None, help="override the hybrid's training decoder")
    p.add_argument("--decoder", default=None, choices=["auto", "held_karp", "milp", "heuristic", "lkh"],
                   help="path solver for dev evaluation, the hybrid's training decodes (unless --margin-decoder) "
                        "and test (default: auto)")
    p.add_argument("--work", default=str(ROOT / "models" / "tsprank-eval"), help="models and cached runs")
    p.add_argument("--quick", action="store_true", help="1 seed, top 10 only, 1 epoch, 40 test queries; nothing written")
    p.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, choices=list(ARMS), help="the arms to run")
    p.add_argument("--report-only", action="store_true",
                   help="write the report from the per-setting results already in --work (settings run in separate processes)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("accelerate", "httpx", "rankkit.retrieve", "rankkit.index"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.quick:
        args.seeds, args.settings, args.epochs = args.seeds[:1], ["bm25 top 10"], 1
    if "ce top 30" in args.settings and not args.ce and not args.report_only:
        p.error("the 'ce top 30' setting needs --ce (a LoRA cross-encoder folder)")
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        pq, ts, dec, emb = merge_partials(work, args.settings)
        report(pq, ts, dec, args, started, emb)
        return

    from rankkit.data import load_dataset
    from rankkit.evaluate import evaluate
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.tsp_model import shared_cache
    from rankkit.rerank.tsprank import TSPRank
    from rankkit.runcard import write_json
    from rankkit.train.config import load_train_config
    from rankkit.train.data import load_training_data
    from rankkit.train.loop import train_reranker
    from rankkit.types import Run

    test = load_dataset("beir/scifact", "test")
    if args.quick:
        test = test.subset(40)
    bm25_test = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", test, show_progress=False)(test.queries)
    bm25_train = work / "bm25-top100-train.trec"  # BM25 once, not once per (setting, seed)
    if not bm25_train.is_file():
        train_ds = load_dataset("beir/scifact", "train")
        Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", train_ds, show_progress=False)(
            train_ds.queries).top_k(100).to_trec(bm25_train, tag="bm25")
    ce_train = ce_test = None
    if "ce top 30" in args.settings:
        ce_train, ce_test = ce_runs(args.ce, work)
    per_query: dict[str, dict[int, dict[str, float]]] = {}
    train_s: dict[str, list[float]] = {}
    decoders: dict[str, dict[str, int]] = {}
    embed_s: list[float] = []

    def record(row: str, seed: int, run: Run) -> None:
        per_query.setdefault(row, {})[seed] = evaluate(run, test.qrels, "ndcg@10", per_query=True)["ndcg@10"]
        log.info("seed %d %-40s nDCG@10 %.4f", seed, row, np.mean(list(per_query[row][seed].values())))

    for setting in args.settings:
        embed_from = len(embed_s)
        k = 10 if setting.endswith("10") else 30
        first_test = Run.from_trec(ce_test) if setting.startswith("ce") else bm25_test
        first_test = Run({q: first_test[q] for q in first_test if q in {x.qid for x in test.queries}})
        for seed in args.seeds:
            record(f"{setting}: first stage", seed, first_test.top_k(k))
            base_over = {"seed": seed, "data.groups.group_size": k, "data.dev_depth": k}
            base_over["data.first_stage"] = str(ce_train if setting.startswith("ce") else bm25_train)
            if args.epochs:
                base_over["epochs"] = args.epochs
            cfg0, base = load_train_config(CONFIG, base_over)
            data = load_training_data(cfg0, base, show_progress=False)
            # every text embedded once up front, so each arm's training time is its own
            t = time.perf_counter()
            cache = shared_cache(cfg0.model.name, cfg0.model.max_length)
            cache.add([g.query.text for g in data.groups[0]] + [d.contents for g in data.groups[0] for d in g.docs]
                      + [q.text for q in data.dev.queries] + [q.text for q in test.queries]
                      + [d.contents for d in test.docs(sorted({x for q in first_test for x in first_test.top_k(k)[q]})).values()]
                      + [d.contents for d in data.dev.docs(sorted({x for q in data.dev_run
                                                                   for x in data.dev_run.top_k(k)[q]})).values()])
            embed_s.append(time.perf_counter() - t)
            for arm in args.arms:
                head, objective = ARMS[arm]
                row = f"{setting}: {arm}"
                out = work / f"{setting.replace(' ', '-')}-{head}-{objective}-s{seed}"
                over = {**base_over, "model.tsp.head": head, "output": str(out),
                        "objective": {"name": "tsp_local", "ties": "any"} if objective.endswith("ties-any")
                        else objective}
                if args.decoder:
                    over["model.tsp.decoder"] = args.decoder
                if objective == "tsp_hybrid" and (args.margin_decoder or args.decoder):
                    over["objective"] = {"name": "tsp_hybrid", "decoder": args.margin_decoder or args.decoder}
                cfg, _ = load_train_config(CONFIG, over)
                card_path = out / "train_card.json"
                if not card_path.is_file():
                    train_reranker(cfg, base, data=data, show_progress=False)
                train_s.setdefault(row, []).append(json.loads(card_path.read_text())["wall_time_s"])
                stage = TSPRank(test, model=str(out), depth=k, show_progress=False, decoder=args.decoder or "auto")
                record(row, seed, stage(test.queries, first_test.top_k(k)))
                for key, count in stage.decode_stats.items():
                    decoders.setdefault(row, {})[key] = decoders.get(row, {}).get(key, 0) + count
        if not args.quick:  # each setting's results on disk, so settings (and arms) can run in parallel processes
            mine = [r for r in per_query if r.startswith(f"{setting}: ")]
            tag = "" if args.arms == DEFAULT_ARMS else "-" + "-".join(sorted(ARMS[a][1] for a in args.arms))
            write_json({"per_query": {r: per_query[r] for r in mine}, "train_s": {r: train_s[r] for r in mine if r in train_s},
                        "decoders": {r: decoders[r] for r in mine if r in decoders}, "embed_s": sum(embed_s[embed_from:])},
                       work / f"partial-{setting.replace(' ', '-')}{tag}.json")
    if args.quick:
        report(per_query, train_s, decoders, args, started, sum(embed_s))
    else:
        pq, ts, dec, emb = merge_partials(work, args.settings)
        report(pq, ts, dec, args, started, emb)


def merge_partials(work: Path, settings: list[str]) -> tuple[dict[str, dict[int, dict[str, float]]],
                                                               dict[str, list[float]], dict[str, dict[str, int]], float]:
    """The per-setting results saved in ``work`` (one file per setting), merged for the report."""
    per_query: dict[str, dict[int, dict[str, float]]] = {}
    train_s: dict[str, list[float]] = {}
    decoders: dict[str, dict[str, int]] = {}
    embed_s = 0.0
    for setting in settings:
        paths = sorted(work.glob(f"partial-{setting.replace(' ', '-')}*.json"))
        if not paths:
            raise SystemExit(f"{work}: no results for setting {setting!r}; run it first (without --report-only)")
        for path in paths:
            part = json.loads(path.read_text())
            per_query.update({r: {int(s): v for s, v in seeds.items()} for r, seeds in part["per_query"].items()})
            train_s.update(part["train_s"])
            decoders.update(part["decoders"])
            embed_s += part["embed_s"]
    return per_query, train_s, decoders, embed_s


def report(per_query: dict[str, dict[int, dict[str, float]]], train_s: dict[str, list[float]],
           decoders: dict[str, dict[str, int]], args: argparse.Namespace, started: float, embed_s: float) -> None:
    """Means +- std over seeds; paired t-tests vs the setting's pointwise-softmax arm and first stage (Holm)."""
    from scipy.stats import ttest_rel
    from tabulate import tabulate

    from rankkit.evaluate import _adjust
    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    rows: list[dict[str, Any]] = []
    avg: dict[str, dict[str, float]] = {}
    arms = ["first stage", *ARMS]
    settings = list(dict.fromkeys(r.split(": ", 1)[0] for r in per_query))
    order = sorted(per_query, key=lambda r: (settings.index(r.split(": ", 1)[0]), arms.index(r.split(": ", 1)[1])))
    for row in order:
        seeds = per_query[row]
        qids = sorted(next(iter(seeds.values())))
        means = [float(np.mean([s[q] for q in qids])) for s in seeds.values()]
        avg[row] = {q: float(np.mean([s[q] for s in seeds.values()])) for q in qids}
        rows.append({"row": row, "seeds": len(seeds), "mean": float(np.mean(means)),
                     "std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0, "per_seed": means,
                     "train_s": float(np.mean(train_s[row])) if row in train_s else None,
                     "decoders": decoders.get(row)})
    tests: list[tuple[dict[str, Any], str, str]] = []
    for r in rows:
        setting, arm = r["row"].split(": ", 1)
        for key, ref in (("vs_first_stage", f"{setting}: first stage"), ("vs_pointwise", f"{setting}: pointwise head, softmax")):
            if arm != "first stage" and r["row"] != ref and ref in avg:
                tests.append((r, key, ref))
    pv = []
    for r, key, ref in tests:
        qids = sorted(avg[ref])
        p = ttest_rel([avg[r["row"]][q] for q in qids], [avg[ref][q] for q in qids]).pvalue
        pv.append(1.0 if np.isnan(p) else float(p))
    for (r, key, ref), ph in zip(tests, _adjust(pv, "holm")):
        sign = "+" if r["mean"] > next(x["mean"] for x in rows if x["row"] == ref) else "-"
        r[key] = {"p_holm": ph, "direction": sign}

    def cell(r: dict[str, Any], key: str) -> str:
        t = r.get(key)
        return "" if t is None else f"{t['p_holm']:.2g} ({t['direction']})"

    table = [[r["row"], r["seeds"], f"{r['mean']:.4f} ± {r['std']:.4f}", cell(r, "vs_first_stage"),
              cell(r, "vs_pointwise"), "" if r["train_s"] is None else f"{r['train_s']:.0f}"] for r in rows]
    md = tabulate(table, headers=["SciFact test (300 queries)", "seeds", "nDCG@10 mean ± std",
                                  "p vs first stage (Holm)", "p vs pointwise softmax (Holm)", "train s"],
                  tablefmt="github")
    print(md)
    if args.quick:
        return
    card = run_card(vars(args), args.seeds[0], time.perf_counter() - started)
    write_json({"rows": rows, "embedding_s": embed_s, "run_card": card}, OUT.with_suffix(".json"))
    used = {r["row"]: r["decoders"] for r in rows if r["decoders"]}
    with atomic_write(OUT.with_suffix(".md")) as fh:
        fh.write(f"# TSPRank on SciFact\n\n{md}\n\n")
        fh.write("Every arm: `pipelines/tsprank_scifact.yaml` (frozen all-MiniLM-L6-v2 features product, cosine "
                 "and the first stage's score), only head and objective changed; the list is the first stage's "
                 "top k for training and test alike. p: paired t-test of the seed-averaged per-query nDCG@10, "
                 "Holm over every test in the table; (+) / (-): the row's mean is above / below the reference.\n\n")
        fh.write("'TSPRank local, ties any' is rankkit's option, not the paper's: the local loss in expectation "
                 "over a uniformly random order within each label (`objective: {name: tsp_local, ties: any}`), "
                 "where the paper's gold path keeps the first stage's order among equally labelled candidates.\n\n")
        fh.write(f"Decoders used at test time (queries): `{json.dumps(used)}`\n\n")
        fh.write(f"Embedding every text once (frozen MiniLM, not in the train times): {embed_s:.0f} s.\n\n")
        fh.write(f"Machine: {card['machine'].get('cpu_model')} ({card['machine'].get('cpus')} CPUs); "
                 f"{card['date']}; command: `{card['command']}`.\n")


if __name__ == "__main__":
    main()
