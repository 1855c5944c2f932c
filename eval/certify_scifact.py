"""CertDR on SciFact test: clean- vs noisy-trained LoRA cross-encoder, CRQ@K at N = 100 and 1,000,
the attack soundness check, and the robustness report (BM25, dense, CE, smoothed CE).

Models: ``pipelines/train_ce_certify.yaml`` (clean) and ``pipelines/train_ce_certify_noisy.yaml``
(noisy training), found at ``models/ce-scifact-certify[-noisy]`` (the pipelines' paths).

    python eval/certify_scifact.py --model clean --parts certify100 attack certify1000 sound100 --queries-1000 3
    python eval/certify_scifact.py --model noisy --parts certify100 attack certify1000 sound100 --queries-1000 3
    python eval/certify_scifact.py --report-only

Each part writes its folder under ``results/certify/<model>-<part>/`` (the jobs' JSON, Markdown and
plot); ``--report-only`` merges them into ``eval/results/certify_scifact.{md,json}`` and
``eval/results/certify_scifact.png``, with the WordNet sets' bounds measured on the same candidates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "certify"
RESULTS = ROOT / "eval" / "results"
PIPE = ROOT / "pipelines"

# The budget on 2 CPU cores: N = 100 on the first 25 test queries, N = 1,000 on the first 4, BM25 top 11.
Q100, Q1000, DEPTH, SOUND = 25, 4, 11, 10
PIPELINES = {"clean": "bm25_ce_certify.yaml", "noisy": "bm25_ce_certify_noisy.yaml"}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def run_part(model: str, part: str, quiet: bool) -> None:
    from rankkit.config import load_config
    from rankkit.robust.config import AttackJobConfig, CertifyConfig
    from rankkit.robust.report import run_attack, run_certify

    common = {"pipeline": PIPELINES[model], "depth": DEPTH, "cache_dir": str(OUT / f"cache-{model}")}
    if part in ("certify100", "certify1000", "sound100"):
        # sound100: the soundness check at K = 1 for N = 100 on the first SOUND queries (scores from certify100's cache)
        n, q = {"certify100": (100, Q100), "certify1000": (1000, Q1000), "sound100": (100, SOUND)}[part]
        extra = {"attack_k": 1} if part == "sound100" else {}
        cfg, base = load_config(CertifyConfig, PIPE / "certify_scifact.yaml",
                                {**common, **extra, "samples": [n], "queries": q,
                                 "output": str(OUT / f"{model}-{part}")})
        run_certify(cfg, base, show_progress=not quiet)
        return
    rankers = {"cross-encoder": {"pipeline": PIPELINES[model]},
               "smoothed-cross-encoder": {"pipeline": PIPELINES[model], "smoothed": True, "samples": 100}}
    if model == "clean":
        rankers = {"bm25": {"pipeline": "bm25.yaml"}, "dense": {"pipeline": "dense.yaml"}, **rankers}
    overrides = {"rankers": rankers, "queries": Q100, "depth": DEPTH, "cache_dir": common["cache_dir"],
                 "output": str(OUT / f"{model}-attack")}
    cfg, base = load_config(AttackJobConfig, PIPE / "attack_scifact.yaml", overrides)
    run_attack(cfg, base, show_progress=not quiet)


def wordnet_bounds() -> dict:
    """The WordNet sets (the paper's construction) on the same candidates: o_d, and the most any
    scores could certify (a query is certifiable at K only if 1 - max_{j>K} o_d - eps > 0)."""
    from rankkit.config import load_config
    from rankkit.data import load_dataset
    from rankkit.robust.certify import hoeffding_margin
    from rankkit.robust.config import CertifyConfig
    from rankkit.robust.perturb import PerturbConfig, build_table
    from rankkit.robust.report import _queries, split_pipeline
    from rankkit.robust.smoothing import first_words

    cfg, base = load_config(CertifyConfig, PIPE / "certify_scifact.yaml", {"queries": Q100, "depth": DEPTH})
    ds = load_dataset(cfg.dataset)
    table = build_table((d.contents for d in ds.docs_iter()), PerturbConfig(source="wordnet"))
    queries = _queries(ds, cfg.queries)
    first, _ = split_pipeline(base / cfg.pipeline, ds, False)
    cand = first(queries).top_k(DEPTH)
    docs = ds.docs(list({d for q in cand for d in cand[q]}))
    bounds = {d: table.bound(first_words(docs[d].contents, cfg.max_words)) for d in docs}
    out = {"sets": table.stats(), "o_d_mean": float(np.mean(list(bounds.values()))),
           "o_d_min": float(min(bounds.values())), "crq_upper_bound": {}}
    for n in (100, 1000):
        eps = hoeffding_margin(n)
        ub = {}
        for k in cfg.cutoffs:
            ok = 0
            for q in cand:
                below = [d for d, _ in cand.ranked(q)][k:]  # any order: the bound takes the worst document
                ok += 1 - max(bounds[d] for d in below) - eps > 0
            ub[k] = ok / len(cand)
        out["crq_upper_bound"][n] = ub
    return out


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rankkit.runcard import versions

    parts = {}
    for path in sorted(OUT.glob("*-*/certify.json")) + sorted(OUT.glob("*-attack/attack.json")):
        parts[path.parent.name] = json.loads(path.read_text())
    wn = wordnet_bounds()
    q100 = parts.get("clean-certify100", {}).get("queries", Q100)
    q1000 = parts.get("clean-certify1000", {}).get("queries", Q1000)
    lines = ["# CertDR on SciFact test: certified top-K robustness of a LoRA cross-encoder, clean vs noisy training",
             "", f"Machine: {_cpu()}, {platform.machine()}, 2 cores; {dt.datetime.now(dt.timezone.utc).isoformat()}; "
             "CPU only (no GPU run).", "Command: `python eval/certify_scifact.py --model {clean,noisy} --parts "
             "certify100 attack certify1000 sound100 --queries-1000 N` (the two models in parallel, one thread each), then "
             "`--report-only`.", "",
             f"Candidates: BM25 top {DEPTH} per query; N = 100 on the first {q100} test queries by id, N = 1,000 on the "
             f"first {q1000}; documents cut to their first 64 words; alpha 0.05; the per-document certification rule. "
             "Sets: MiniLM word vectors (all-but-the-top, 8 components), cosine >= 0.65, whole components "
             "(all are <= 100 words at this threshold, so o_d = 0 for every document).", ""]
    ks = None
    rows, sound = [], []
    for model in ("clean", "noisy"):
        for part in ("certify100", "certify1000", "sound100"):
            r = parts.get(f"{model}-{part}")
            if not r:
                continue
            for n, e in r["by_samples"].items():
                if e.get("attack"):
                    sound.append((model, n, r["queries"], e["attack"]))
                if part != "sound100":
                    ks = r["ks"]
                    rows.append((model, n, r["queries"], e, e.get("attack", {})))
    if ks:
        lines += ["| model | N | queries | margin | " + " | ".join(f"CRQ@{k}" for k in ks)
                  + " | base nDCG@10 | smoothed nDCG@10 | pairs | scored | min |", "|" + "---|" * (len(ks) + 9)]
        for model, n, q, e, _ in rows:
            lines.append(f"| {model} | {n} | {q} | {e['margin']:.3f} | " + " | ".join(f"{e['crq'][str(k)]:.2f}" for k in ks)
                         + f" | {e['clean']['base_ndcg@10']:.4f} | {e['clean']['smoothed_ndcg@10']:.4f} | {e['pairs']} | "
                         f"{e['pairs_scored']} | {e['minutes']:.1f} |")
        lines += ["", "Soundness check (the document at rank K + 1 attacked with at most 20 substitutions chosen on "
                  "the base CE; success: its smoothed score passes the K-th's):", "",
                  "| model | N | queries | K | certified | successes | uncertified | successes |",
                  "|---|---|---|---|---|---|---|---|"]
        for model, n, q, a in sound:
            lines.append(f"| {model} | {n} | {q} | {a['k']} | {a['certified']} | {a['certified_successes']} | "
                         f"{a['uncertified']} | {a['uncertified_successes']} |")
    lines += ["", "## Robustness report (same BM25 top 11, target at rank 11, K = 10, budget 20 substitutions)", "",
              "| model | ranker | clean nDCG@10 | attack success | mean rank gain | certified at K=10 (successes) | min |",
              "|---|---|---|---|---|---|---|"]
    for model in ("clean", "noisy"):
        r = parts.get(f"{model}-attack")
        for name, e in (r or {}).get("rankers", {}).items():
            cert = f"{e['certified']} ({e['certified_successes']})" if "certified" in e else "-"
            lines.append(f"| {model} | {name} | {e['clean_ndcg@10']:.4f} | {e['success_rate']:.3f} | "
                         f"{e['mean_rank_gain']:.2f} | {cert} | {e['minutes']:.1f} |")
    lines += ["", "## WordNet sets (the paper's construction) on the same candidates", "",
              f"{wn['sets']['perturbable_words']} perturbable words, {wn['sets']['overlap_one']} of them in whole "
              f"components; candidate o_d mean {wn['o_d_mean']:.4f}, min {wn['o_d_min']:.4f}. Upper bound on CRQ for "
              "any scores: " + "; ".join(f"N = {n}: " + ", ".join(f"K={k} {v:.2f}" for k, v in ub.items())
                                        for n, ub in wn["crq_upper_bound"].items()), ""]
    (RESULTS / "certify_scifact.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "certify_scifact.json").write_text(json.dumps(
        {"parts": {k: {kk: vv for kk, vv in v.items() if kk != "card"} for k, v in parts.items()}, "wordnet": wn,
         "machine": _cpu(), "versions": versions(), "command": " ".join(sys.argv)}, indent=1, default=str))
    if ks:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for model, n, q, e, _ in rows:
            ax.plot(ks, [e["crq"][str(k)] for k in ks], marker="o", linestyle="-" if model == "clean" else "--",
                    label=f"{model}, N = {n} ({q} queries)")
        ax.set_xlabel("K")
        ax.set_ylabel("certified robust query ratio")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RESULTS / "certify_scifact.png", dpi=120)
    print("\n".join(lines))


def main() -> None:
    global Q1000
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(PIPELINES))
    ap.add_argument("--parts", nargs="*", default=["certify100", "attack", "certify1000", "sound100"])
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--queries-1000", type=int, default=Q1000, help="queries of the N = 1,000 run")
    args = ap.parse_args()
    Q1000 = args.queries_1000
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.report_only:
        if not args.model:
            ap.error("--model is required unless --report-only")
        for part in args.parts:
            t0 = time.time()
            run_part(args.model, part, args.quiet)
            logging.info("%s %s: %.1f min", args.model, part, (time.time() - t0) / 60)
        return
    report()


if __name__ == "__main__":
    main()
