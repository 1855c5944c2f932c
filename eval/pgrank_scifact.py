"""Neural PG-Rank on SciFact: Plackett-Luce policy gradient vs warm starts and InfoNCE, reranking BM25 top 100.

Two subcommands::

    # PG step time vs the listwise softmax objective on the same batches (alternating rounds)
    RANKKIT_DATA_DIR=../shared/data python eval/pgrank_scifact.py steptime
    # the experiment (hours on 2 CPU cores; minutes on a GPU)
    RANKKIT_DATA_DIR=../shared/data python eval/pgrank_scifact.py run --ce models/ce-scifact --seeds 42 43 44
    # arms split over several processes (--scorers, --seeds, --models), then one report
    python eval/pgrank_scifact.py run --ce models/ce-scifact --models models --reuse --report-only

``run`` trains on SciFact train (BM25 candidate sets: the top ``group_size`` of
``pipelines/bm25.yaml`` with every judged positive, 10% of the queries held out as dev)
and evaluates on SciFact test by reranking BM25's top 100. Every trained arm takes the
same number of optimiser steps (``--steps``) on the same candidate sets and batch size:

- bi-encoder (``pipelines/pgrank_bi_scifact.yaml``): warm start (untuned MiniLM), + InfoNCE
  (the same groups, in-batch negatives), + PG, InfoNCE then PG (``--steps`` each);
- cross-encoder (``pipelines/pgrank_ce_scifact.yaml``): the LoRA cross-encoder ``--ce`` vs
  the same + PG; CE alone and interpolated with BM25, the weight chosen on the seed's dev
  queries (as ``rankkit train reranker`` does).

Reports nDCG@10 mean +- std over seeds, a paired t-test of the seed-averaged per-query
nDCG@10 against the warm start of the same scorer (Holm over the rows), training wall
time, and the reward / gradient-variance curves (``eval/results/pgrank_scifact.png``).
Results with a run card: ``eval/results/pgrank_scifact.{json,md}`` and
``eval/results/pgrank_steptime.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BI = ROOT / "pipelines" / "pgrank_bi_scifact.yaml"
CE = ROOT / "pipelines" / "pgrank_ce_scifact.yaml"
RESULTS = ROOT / "eval" / "results"
METRIC = "ndcg@10"
log = logging.getLogger("pgrank_scifact")


# --- step time ---------------------------------------------------------------------------

def steptime(args: argparse.Namespace) -> dict[str, Any]:
    """PG vs softmax train_batch time on the same batches of the CE config, alternating rounds."""
    import torch

    from rankkit.train.config import load_train_config
    from rankkit.train.data import load_training_data
    from rankkit.train.loop import _Loop
    from rankkit.train.objectives import build_objective

    cfg, base = load_train_config(CE, {"model.init_from": None, "max_steps": 1000, "data.dev": None,
                                       "data.groups.group_size": args.group_size, "precision": args.precision,
                                       "forward_chunk": args.chunk})
    data = load_training_data(cfg, base)
    with tempfile.TemporaryDirectory() as tmp:
        loop = _Loop(cfg, data, Path(tmp) / "m")
        batches = [b for _, b in zip(range(args.batches), loop.loader(0))]
        objectives = {"plackett_luce_pg": build_objective(cfg.objective), "softmax": build_objective("softmax")}
        times: dict[str, list[float]] = {k: [] for k in objectives}
        for name, obj in objectives.items():  # warm-up
            loop.objective = obj
            loop.train_batch(batches[0])
        for r in range(args.rounds):
            for name, obj in objectives.items():
                loop.objective = obj
                torch.manual_seed(r)
                t = time.perf_counter()
                for b in batches:
                    loop.train_batch(b)
                times[name].append((time.perf_counter() - t) / len(batches))
                log.info("round %d %s: %.2f s/step", r + 1, name, times[name][-1])
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"seconds_per_step": times, "median": med, "ratio_pg_over_softmax": med["plackett_luce_pg"] / med["softmax"],
            "pairs_per_step": cfg.batch_size * args.group_size, "batches": args.batches, "rounds": args.rounds,
            "forward_chunk": args.chunk, "precision": args.precision, "objective": cfg.objective}


def _write_steptime(res: dict[str, Any], out: Path, started: float) -> None:
    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    card = run_card({}, None, time.perf_counter() - started)
    res["run_card"] = card
    write_json(res, out.with_suffix(".json"))
    with atomic_write(out.with_suffix(".md")) as fh:
        fh.write("# PG-Rank step time vs listwise softmax (same batches, LoRA MiniLM cross-encoder)\n\n")
        fh.write(f"Machine: {card['machine'].get('cpu_model')}, {card['machine'].get('cpus')} CPUs"
                 f"{', GPU ' + str(card['machine'].get('gpu')) if card['machine'].get('gpu') else ''}; {card['date']}; "
                 f"command: `{card['command']}`.\n\n")
        fh.write("| objective | s/step (median) | per round |\n|---|---|---|\n")
        for k, v in res["seconds_per_step"].items():
            fh.write(f"| {k} | {res['median'][k]:.2f} | {', '.join(f'{x:.2f}' for x in v)} |\n")
        fh.write(f"\nRatio PG / softmax: **{res['ratio_pg_over_softmax']:.2f}x** ({res['pairs_per_step']} pairs per step, "
                 f"{res['batches']} batches x {res['rounds']} alternating rounds, forward_chunk {res['forward_chunk']}, "
                 f"precision {res['precision']}, {res['objective']['samples']} sampled rankings per query).\n")


# --- experiment --------------------------------------------------------------------------

def _train(config: Path, overrides: dict[str, Any], output: Path, reuse: bool) -> dict[str, Any]:
    """Train one arm (``reuse``: keep a finished folder, continue a killed one from its checkpoint)."""
    from rankkit.train.config import load_train_config
    from rankkit.train.loop import train_reranker

    cfg, base = load_train_config(config, overrides)
    cfg.output = str(output)
    if not (reuse and (output / "train_card.json").is_file()):
        train_reranker(cfg, base, resume=reuse)
    return json.loads((output / "train_card.json").read_text())


def run(args: argparse.Namespace) -> None:
    """Train every arm for every seed, rerank SciFact test BM25 top 100, write the report."""
    import rankkit
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.interpolate import interpolate, select_weight
    from rankkit.runcard import write_json
    from rankkit.train.groups import holdout
    from rankkit.train.scorers import scorer_class
    from rankkit.types import Run

    started = time.perf_counter()
    models = Path(args.models)
    test = rankkit.load_dataset("beir/scifact/test")
    if args.test_queries:
        test = test.subset(args.test_queries)
    bm25_test = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", test, show_progress=False)(test.queries).top_k(100)
    train_all = rankkit.load_dataset("beir/scifact/train")
    bm25_train = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", train_all,
                                    show_progress=False)(train_all.queries).top_k(100)
    # no dev evaluation inside training: every arm's final model is evaluated, and the
    # interpolation weight is chosen here on the same dev queries for every cross-encoder
    models.mkdir(parents=True, exist_ok=True)
    first_stage = models / "pg-bm25-scifact-train.trec"  # BM25 once, not once per trained arm
    bm25_train.to_trec(first_stage, tag="bm25")
    common = {"max_steps": args.steps, "data.groups.group_size": args.group_size, "eval_every": 0,
              "tune_interpolation": False, "data.first_stage": str(first_stage), "precision": args.precision}
    if args.no_forward_chunk:  # gradient caching is exact: off, each PG step skips a second forward pass
        common["forward_chunk"] = None
    bi_common = {"model.max_length": args.bi_max_length}
    # per-(arm, seed) evaluations kept beside the models, so a killed run (or one seed per
    # session on a slow machine) resumes without scoring finished arms again
    evals_file = models / f"pg-evals-t{args.test_queries or 'all'}-d{args.dev_queries or 'all'}.json"
    evals = json.loads(evals_file.read_text()) if args.reuse and evals_file.is_file() else {}
    per_query: dict[str, dict[int, dict[str, float]]] = {}
    cards: dict[str, dict[int, dict[str, Any]]] = {}

    test_runs: dict[str, Run] = {}  # a warm start scores the test set once, not once per seed (cached on disk)

    def score(arm: str, seed: int, kind: str, folder: str, dev: Any) -> None:
        key = f"{arm} | {seed} | {Path(folder).resolve()}"
        if key not in evals:
            evals[key] = _score(arm, seed, kind, folder, dev)
            write_json(evals, evals_file)
        for row, (values, card) in evals[key].items():
            per_query.setdefault(row, {})[seed] = values
            if card:
                cards.setdefault(row, {})[seed] = card

    def _score(arm: str, seed: int, kind: str, folder: str, dev: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        scorer = scorer_class(kind).load(folder)
        if folder not in test_runs:
            cached = models / f"pg-test-{Path(folder).resolve().name}-t{args.test_queries or 'all'}.trec"
            if args.reuse and cached.is_file():
                test_runs[folder] = Run.from_trec(cached)
            else:
                test_runs[folder] = scorer.rerank(test, bm25_test, 100, 64, "auto")
                test_runs[folder].to_trec(cached, tag=Path(folder).name)
        run_test = test_runs[folder]
        out[arm] = (rankkit.evaluate(run_test, test.qrels, METRIC, per_query=True)[METRIC], None)
        if kind == "cross_encoder":  # interpolation with BM25, the weight chosen on this seed's dev queries
            dev_bm25 = Run({q.qid: bm25_train[q.qid] for q in dev.queries if q.qid in bm25_train}, name="bm25")
            weight, _ = select_weight(dev_bm25, scorer.rerank(dev, dev_bm25, 100, 64, "auto"), dev.qrels, METRIC)
            mixed = interpolate(bm25_test, run_test, weight)
            out[f"{arm} + bm25 (w from dev)"] = (rankkit.evaluate(mixed, test.qrels, METRIC, per_query=True)[METRIC],
                                                 {"weight": weight})
        return out

    if args.report_only:  # what is cached, nothing trained or scored (arms run by several invocations)
        for key, rows in evals.items():
            arm, seed_s, folder = key.split(" | ")
            if int(seed_s) not in args.seeds:
                continue
            card_file = Path(folder) / "train_card.json"
            for row, (values, card) in rows.items():
                per_query.setdefault(row, {})[int(seed_s)] = values
                if card:
                    cards.setdefault(row, {})[int(seed_s)] = card
            if card_file.is_file() and "warm start" not in arm:
                cards.setdefault(arm, {})[int(seed_s)] = json.loads(card_file.read_text())
        _report(per_query, cards, Path(args.output), started)
        return
    for seed in args.seeds:
        _, dev = holdout(train_all, 0.1, seed)
        if args.dev_queries:
            dev = dev.subset(args.dev_queries)
        seeded = {**common, "seed": seed}
        if "ce" in args.scorers:
            score("ce: warm start (LoRA CE)", seed, "cross_encoder", args.ce, dev)
            pg = models / f"pg-ce-pg-s{seed}"
            cards.setdefault("ce: + PG", {})[seed] = _train(
                CE, {**seeded, "model.init_from": str(Path(args.ce).resolve())}, pg, args.reuse)
            score("ce: + PG", seed, "cross_encoder", str(pg), dev)
        if "bi" in args.scorers:
            bi = {**seeded, **bi_common}
            score("bi: warm start (untuned MiniLM)", seed, "bi_encoder", _untuned_bi(models, args.bi_max_length), dev)
            nce = models / f"pg-bi-infonce-s{seed}"
            cards.setdefault("bi: + InfoNCE", {})[seed] = _train(
                BI, {**bi, "objective": {"name": "infonce"}, "forward_chunk": None}, nce, args.reuse)
            score("bi: + InfoNCE", seed, "bi_encoder", str(nce), dev)
            pg = models / f"pg-bi-pg-s{seed}"
            cards.setdefault("bi: + PG", {})[seed] = _train(BI, bi, pg, args.reuse)
            score("bi: + PG", seed, "bi_encoder", str(pg), dev)
            both = models / f"pg-bi-infonce-pg-s{seed}"
            cards.setdefault("bi: InfoNCE then PG", {})[seed] = _train(
                BI, {**bi, "model.init_from": str(nce)}, both, args.reuse)
            score("bi: InfoNCE then PG", seed, "bi_encoder", str(both), dev)
    _report(per_query, cards, Path(args.output), started)


def _untuned_bi(models: Path, max_length: int) -> str:
    """The untuned MiniLM saved as a rankkit bi-encoder folder (the bi-encoder warm start)."""
    from rankkit.retrieve.bi_encoder import BiEncoderModel
    from rankkit.train.config import load_train_config

    out = models / f"pg-bi-untuned-l{max_length}"
    if not (out / "rankkit_bi.json").is_file():
        m = load_train_config(BI)[0].model
        BiEncoderModel.new(m.name, pooling=m.pooling, normalize=bool(m.normalize), temperature=float(m.temperature),
                           learn_temperature=False, max_length=max_length).save(out)
    return str(out)


def _report(per_query: dict[str, dict[int, dict[str, float]]], cards: dict[str, dict[int, dict[str, Any]]],
            out: Path, started: float) -> None:
    from scipy.stats import ttest_rel
    from tabulate import tabulate

    from rankkit.evaluate import _adjust
    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    rows = []
    for arm, seeds in per_query.items():
        qids = sorted(next(iter(seeds.values())))
        means = [float(np.mean([s[q] for q in qids])) for s in seeds.values()]
        avg = [float(np.mean([s[q] for s in seeds.values()])) for q in qids]
        train_s = [c.get("wall_time_s") for c in cards.get(arm, {}).values() if c.get("wall_time_s")]
        rows.append({"row": arm, "seeds": len(seeds), "mean": float(np.mean(means)),
                     "std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0, "per_seed": means,
                     "per_query_avg": dict(zip(qids, avg)), "train_s": float(np.mean(train_s)) if train_s else None,
                     "weights": [c["weight"] for c in cards.get(arm, {}).values() if "weight" in c]})
    tested = []
    for r in rows:
        scorer, rest = r["row"].split(":", 1)
        if "warm start" in rest:
            continue
        suffix = " + bm25 (w from dev)" if r["row"].endswith("+ bm25 (w from dev)") else ""
        warm = next(w for w in rows if w["row"].startswith(f"{scorer}: warm start") and w["row"].endswith(suffix)
                    and (suffix or not w["row"].endswith("(w from dev)")))
        common = sorted(set(per_query[r["row"]]) & set(per_query[warm["row"]]))  # seeds both have
        qids = sorted(r["per_query_avg"])
        mine, ref = ([float(np.mean([per_query[row][s][q] for s in common])) for q in qids]
                     for row in (r["row"], warm["row"]))
        p = ttest_rel(mine, ref).pvalue
        r["p"], r["vs"] = 1.0 if np.isnan(p) else float(p), warm["row"]
        tested.append(r)
    for r, ph in zip(tested, _adjust([r["p"] for r in tested], "holm")):
        r["p_holm"] = ph
    def p_cell(r: dict[str, Any]) -> str:
        if "p_holm" not in r:
            return ""
        warm_mean = next(w["mean"] for w in rows if w["row"] == r["vs"])
        return f"{r['p_holm']:.2g}" + (f" ({'better' if r['mean'] > warm_mean else 'worse'})"
                                       if r["p_holm"] < 0.05 else "")

    table = [[r["row"], r["seeds"], f"{r['mean']:.4f} ± {r['std']:.4f}", p_cell(r),
              "" if r["train_s"] is None else f"{r['train_s']:.0f}", ",".join(str(w) for w in r["weights"])]
             for r in rows]
    md = tabulate(table, headers=["SciFact test, BM25 top 100 reranked", "seeds", f"{METRIC} mean ± std",
                                  "p vs warm start (Holm)", "train s", "dev weights"], tablefmt="github")
    card = run_card({}, None, time.perf_counter() - started)
    for r in rows:
        r.pop("per_query_avg")
    curves = {arm: {str(s): [h for h in c.get("history", []) if "reward" in h] for s, c in by_seed.items()}
              for arm, by_seed in cards.items()}
    curves = {arm: seeds for arm, seeds in curves.items() if any(seeds.values())}  # the PG arms
    write_json({"rows": rows, "curves": curves, "run_card": card}, out.with_suffix(".json"))
    _plot(curves, out.with_suffix(".png"))
    with atomic_write(out.with_suffix(".md")) as fh:
        fh.write(md + "\n\n")
        fh.write(f"Machine: {card['machine'].get('cpu_model')} ({card['machine'].get('cpus')} CPUs"
                 f"{', GPU ' + str(card['machine'].get('gpu')) if card['machine'].get('gpu') else ''}); "
                 f"{card['date']}; command: `{card['command']}`. p: paired t-test of the seed-averaged per-query "
                 f"{METRIC} against the same scorer's warm start in the same setting (over the seeds both rows have), "
                 f"Holm over the rows. "
                 f"Curves: {out.with_suffix('.png').name}.\n")
    print(md)


def _plot(curves: dict[str, dict[str, list[dict[str, Any]]]], path: Path) -> None:
    """Mean sampled reward and gradient-estimate variance (with / without baseline) per step, per PG arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for arm, seeds in curves.items():
        for seed, hist in seeds.items():
            steps = [h["step"] for h in hist]
            ax1.plot(steps, [h["reward"] for h in hist], marker=".", label=f"{arm} s{seed}")
            if hist and "grad_var" in hist[0]:
                ax2.plot(steps, [h["grad_var"] for h in hist], marker=".", label=f"{arm} s{seed} (LOO baseline)")
                ax2.plot(steps, [h["grad_var_no_baseline"] for h in hist], marker=".", linestyle="--",
                         label=f"{arm} s{seed} (no baseline)")
    ax1.set(xlabel="step", ylabel="mean sampled nDCG@10", title="reward")
    ax2.set(xlabel="step", ylabel="variance of the score-gradient estimate", yscale="log", title="gradient variance")
    ax1.legend(fontsize=6)
    ax2.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("steptime")
    s.add_argument("--group-size", type=int, default=30)
    s.add_argument("--batches", type=int, default=3)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--chunk", type=int, default=None, help="forward_chunk (default: whole batch)")
    s.add_argument("--precision", default="fp32")
    s.add_argument("--output", type=Path, default=RESULTS / "pgrank_steptime")
    r = sub.add_parser("run")
    r.add_argument("--ce", required=True, help="the LoRA cross-encoder warm start (a rankkit folder)")
    r.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    r.add_argument("--steps", type=int, default=100)
    r.add_argument("--group-size", type=int, default=30)
    r.add_argument("--bi-max-length", type=int, default=192,
                   help="tokens per text for every bi-encoder arm, warm start included (the CE keeps its own)")
    r.add_argument("--precision", default="auto",
                   help="training precision of every arm (auto: bf16 on CUDA, fp32 on the CPU; bf16 pays off on CPUs with AMX)")
    r.add_argument("--no-forward-chunk", action="store_true",
                   help="score each PG batch in one pass (where memory allows; gradient caching gives the same "
                        "gradients, up to rounding, for an extra forward pass)")
    r.add_argument("--report-only", action="store_true",
                   help="write the report from the cached evaluations of --models (no training, no scoring)")
    r.add_argument("--scorers", nargs="+", default=["bi", "ce"], choices=["bi", "ce"])
    r.add_argument("--models", default=str(ROOT / "models"))
    r.add_argument("--test-queries", type=int, default=None, help="first N test queries (smoke runs only)")
    r.add_argument("--dev-queries", type=int, default=None, help="first N dev queries (smoke runs only)")
    r.add_argument("--reuse", action="store_true", help="evaluate already trained folders")
    r.add_argument("--output", type=Path, default=RESULTS / "pgrank_scifact")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.cmd == "steptime":
        started = time.perf_counter()
        _write_steptime(steptime(args), args.output, started)
        print(args.output.with_suffix(".md").read_text())
    else:
        run(args)


if __name__ == "__main__":
    main()
