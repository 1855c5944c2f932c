"""Report of the cross-encoder matrix (see eval/ce_matrix.py): tables of SciFact test nDCG@10.

For each job and seed: the CE-only run, and the CE interpolated with BM25 by the
weight chosen on that seed's dev queries (held-out SciFact train queries). Means and
standard deviations over seeds; a paired Student t-test of the seed-averaged
per-query nDCG@10 against BM25, Holm-corrected over all rows; BM25 and BM25 >> dense
(MiniLM bi-encoder over BM25 top-100) as reference rows.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METRIC = "ndcg@10"


def _per_query(run: Any, qrels: Any) -> dict[str, float]:
    from rankkit.evaluate import evaluate

    return evaluate(run, qrels, METRIC, per_query=True)[METRIC]


def report(runs_dir: Path, output: Path, bundle: Path = ROOT / ".devbundle") -> dict[str, Any]:
    """Evaluate every ``<job>-s<seed>-{dev,test}.trec`` in ``runs_dir``; write ``output``.json/.md."""
    from scipy.stats import ttest_rel
    from tabulate import tabulate

    from rankkit.data import load_dataset
    from rankkit.evaluate import _adjust
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.interpolate import interpolate, select_weight
    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write
    from rankkit.types import Run

    from ce_matrix import _read_run as _read_gz_run  # eval/ is on sys.path when ce_matrix.py runs this

    t0 = time.perf_counter()
    test, train = load_dataset("beir/scifact", "test"), load_dataset("beir/scifact", "train")
    bm25_test, bm25_train = _read_gz_run(bundle / "bm25-test.trec.gz"), _read_gz_run(bundle / "bm25-train.trec.gz")
    qids = sorted(q for q in test.qrels)
    base = _per_query(bm25_test, test.qrels)
    dense = Pipeline.from_yaml(ROOT / "pipelines" / "bm25_dense.yaml", test)(test.queries)
    refs = {"bm25": base, "bm25>>dense": _per_query(dense, test.qrels)}

    jobs: dict[str, dict[int, dict[str, Any]]] = {}
    for f in sorted(runs_dir.glob("*-test.trec")):
        m = re.fullmatch(r"(.+)-s(\d+)-test\.trec", f.name)
        if not m:
            continue
        job, seed = m.group(1), int(m.group(2))
        ce = Run.from_trec(f)
        dev = Run.from_trec(f.with_name(f"{job}-s{seed}-dev.trec"))
        weight, dev_values = select_weight(bm25_train.top_k(100), dev, train.qrels.restrict(dev.keys()), METRIC)
        info = json.loads(f.with_name(f"{job}-s{seed}.json").read_text())
        jobs.setdefault(job, {})[seed] = {
            "ce": _per_query(ce, test.qrels),
            "interp": _per_query(interpolate(bm25_test, ce, weight), test.qrels),
            "weight": weight, "dev_interp": dev_values[weight], "train_seconds": info["train_seconds"]}

    rows: list[dict[str, Any]] = []
    for name, pq in refs.items():
        rows.append({"row": name, "seeds": 1, "mean": float(np.mean([pq[q] for q in qids])), "std": 0.0,
                     "per_query": pq})
    for job, seeds in jobs.items():
        for kind in ("ce", "interp"):
            means = [float(np.mean([s[kind][q] for q in qids])) for s in seeds.values()]
            avg = {q: float(np.mean([s[kind][q] for s in seeds.values()])) for q in qids}
            label = job if kind == "ce" else f"{job} + bm25 (w from dev)"
            rows.append({"row": label, "seeds": len(seeds), "mean": float(np.mean(means)),
                         "std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0, "per_seed": means,
                         "weights": [s["weight"] for s in seeds.values()] if kind == "interp" else None,
                         "train_seconds_mean": float(np.mean([s["train_seconds"] for s in seeds.values()])),
                         "per_query": avg})
    tested = [r for r in rows if r["row"] != "bm25"]
    p_raw = [float(ttest_rel([r["per_query"][q] for q in qids], [base[q] for q in qids]).pvalue) for r in tested]
    p_raw = [1.0 if np.isnan(p) else p for p in p_raw]
    base_mean = float(np.mean([base[q] for q in qids]))
    for r, p, ph in zip(tested, p_raw, _adjust(p_raw, "holm")):
        r["p"], r["p_holm"] = p, ph
        r["significant"] = ("better" if r["mean"] > base_mean else "worse") if ph < 0.05 else None
    table = [[r["row"], r["seeds"], f"{r['mean']:.4f}", f"{r['std']:.4f}",
              "" if "p_holm" not in r else f"{r['p_holm']:.2g}" + (f" ({r['significant']})" if r["significant"] else ""),
              "" if not r.get("weights") else ",".join(str(w) for w in r["weights"]),
              "" if not r.get("train_seconds_mean") else f"{r['train_seconds_mean']:.0f}"] for r in rows]
    headers = ["run (SciFact test, BM25 top-100)", "seeds", f"{METRIC} mean", "std",
               "p vs BM25 (Holm)", "dev weights", "GPU train s"]
    md = tabulate(table, headers=headers, tablefmt="github")
    for r in rows:
        r.pop("per_query")
    info_file = runs_dir / "matrix_info.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    # a partial re-run copied into the folder leaves its own matrix_info_<name>.json beside the main one
    reruns = {f.stem.removeprefix("matrix_info_"): json.loads(f.read_text())
              for f in sorted(runs_dir.glob("matrix_info_*.json"))}
    sharing = (f"{info.get('workers', '?')} runs at a time shared one {info.get('device', 'device')}"
               + "".join(f"; re-run {name}: {r.get('workers', '?')} at a time, jobs {', '.join(r.get('only') or r.get('jobs', {}))}"
                         for name, r in reruns.items()))
    result = {"metric": METRIC, "rows": rows, "queries": len(qids), "training": info or None, "reruns": reruns,
              "run_card": run_card({"runs_dir": str(runs_dir)}, None, time.perf_counter() - t0)}
    write_json(result, output.with_suffix(".json"))
    with atomic_write(output.with_suffix(".md")) as fh:
        fh.write(md + "\n\nbetter/worse: p < 0.05 after Holm correction over all rows (paired t-test of the "
                 "seed-averaged per-query nDCG@10 against BM25). `ce` = LoRA r=32 MiniLM cross-encoder, listwise "
                 "softmax, no curriculum; `+x` = curriculum heuristic x; `-bce`/`-ranknet` = other objectives; "
                 "`-lora-r8` = trained at r=8; `-sq8` = the `ce` adapter squeezed to r=8 (`+50`: then 50 more "
                 "steps); `+ bm25 (w from dev)` = interpolated with BM25 by the weight chosen on that seed's "
                 "held-out training queries; `-bce` = pointwise BCE with class-balanced `pos_weight` (the default), "
                 "`-bce-unbalanced` = plain BCE. GPU train s: mean wall time per training run "
                 f"({sharing}; the squeeze itself is not timed).\n")
    print(md)
    return result
