"""Cross-encoder experiment matrix on SciFact: objectives, curricula, anti-curriculum, squeeze; 3 seeds.

Three steps, so the training can run where a GPU is (the GPU machine has no Java,
ranx or hub access, so first stages and evaluation stay on the CPU machine):

1. ``python eval/ce_matrix.py bundle --out .devbundle``: writes BM25 runs (SciFact
   train top-1000, test top-100), the SciFact BEIR folder and the MiniLM weights (fp16,
   to fit the transfer limit; cast back to fp32 before use) into one folder.
2. ``python eval/ce_matrix.py train --bundle .devbundle --out DIR``: trains every job of
   :data:`JOBS` for every seed with ``rankkit.train.train_reranker`` (config
   ``pipelines/train_ce_scifact.yaml`` plus the job's overrides), in parallel worker
   processes, and writes each model's CE-only runs on its dev queries and on SciFact
   test (BM25 top-100) plus its wall time. Runs on CPU too (slowly).
3. ``python eval/ce_matrix.py report --runs DIR``: for each job and seed, CE alone and
   CE interpolated with BM25 by the weight chosen on that seed's dev queries; mean and
   std over seeds of nDCG@10; paired t-test against BM25 of the seed-averaged per-query
   nDCG@10, Holm-corrected over jobs; writes ``eval/results/ce_matrix.{json,md}``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "pipelines" / "train_ce_scifact.yaml"
SEEDS = (42, 43, 44)
# name -> (overrides of the training config, squeeze ranks to derive from the trained adapter)
JOBS: dict[str, dict[str, Any]] = {
    "ce": {},
    "ce+reciprank": {"curriculum.heuristic": "reciprank"},
    "ce+normscore": {"curriculum.heuristic": "normscore"},
    "ce+kdescore": {"curriculum.heuristic": "kdescore"},
    "ce+anti-reciprank": {"curriculum.heuristic": "reciprank", "curriculum.anti": True},
    "ce-bce": {"objective": "bce"},  # class-balanced BCE (pos_weight: balanced, the default since issue 9)
    "ce-bce-unbalanced": {"objective": {"name": "bce", "pos_weight": None}},
    "ce-bce+reciprank": {"objective": "bce", "curriculum.heuristic": "reciprank"},
    "ce-ranknet": {"objective": "ranknet"},
    "ce-lora-r8": {"lora.rank": 8, "lora.alpha": 16},
}
SQUEEZE = {"ce": 8}  # squeeze these jobs' r=32 adapters to this rank (and continue 50 steps)
CONTINUE_STEPS = 50


# --- 1. bundle (CPU machine) --------------------------------------------------------------

def bundle(out: Path) -> None:
    """Write BM25 runs, the SciFact folder and fp16 MiniLM weights into ``out``."""
    import torch
    from safetensors.torch import load_file, save_file

    from rankkit.data import load_dataset
    from rankkit.models import resolve_model
    from rankkit.pipeline import Pipeline
    from rankkit.settings import data_dir

    out.mkdir(parents=True, exist_ok=True)
    for split, depth in (("train", 1000), ("test", 100)):
        ds = load_dataset("beir/scifact", split)
        run = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", ds)(ds.queries).top_k(depth)
        with gzip.open(out / f"bm25-{split}.trec.gz", "wt") as fh:
            for qid in run:
                for rank, (doc, score) in enumerate(run.ranked(qid), 1):
                    fh.write(f"{qid} Q0 {doc} {rank} {score:.6f} bm25\n")
    src = data_dir() / "beir" / "scifact"
    import tarfile

    with tarfile.open(out / "scifact.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="scifact")
    model = Path(resolve_model("minilm"))
    (out / "minilm").mkdir(exist_ok=True)
    for f in model.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "README.md", "data_config.json"):
            shutil.copy(f, out / "minilm" / f.name)
    state = load_file(str(model / "model.safetensors"))
    save_file({k: v.to(torch.float16) for k, v in state.items()}, str(out / "minilm" / "model.fp16.safetensors"))
    print(f"bundle written to {out}")


# --- 2. train (GPU machine, or CPU) -------------------------------------------------------

def _prepare_model(bundle_dir: Path) -> Path:
    """fp32 MiniLM from the bundle's fp16 weights (once per machine)."""
    import torch
    from safetensors.torch import load_file, save_file

    target = Path("/tmp/rankkit-minilm-fp32")
    if not (target / "model.safetensors").exists():
        shutil.copytree(bundle_dir / "minilm", target, dirs_exist_ok=True)
        state = load_file(str(target / "model.fp16.safetensors"))
        save_file({k: v.to(torch.float32) for k, v in state.items()}, str(target / "model.safetensors"),
                  metadata={"format": "pt"})
        (target / "model.fp16.safetensors").unlink()
    return target


def _read_run(path: Path) -> Any:
    from rankkit.types import Run

    data: dict[str, dict[str, float]] = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            q, _, d, _, s, _ = line.split()
            data.setdefault(q, {})[d] = float(s)
    return Run(data, name="bm25")


def _job_config(name: str, seed: int, model: Path, overrides: dict[str, Any], max_steps: int | None) -> Any:
    from rankkit.train.config import load_train_config

    values = {"model.name": str(model), "seed": seed, "eval_every": 0, "tune_interpolation": False,
              "save_every": 100000, **overrides}
    if max_steps:
        values["max_steps"] = max_steps
    cfg, _ = load_train_config(CONFIG, values)
    cfg.output = f"/tmp/rankkit-matrix/{name}-s{seed}"
    return cfg


def _worker(jobs: list[tuple[str, int]], bundle_dir: str, out_dir: str, deadline: float, max_steps: int | None,
            num_queries: int | None) -> None:
    import logging

    from rankkit.data import load_dataset
    from rankkit.rerank.ce_model import CrossEncoderModel
    from rankkit.train.data import TrainingData, build_epochs
    from rankkit.train.groups import holdout
    from rankkit.train.squeeze import squeeze_adapter
    from rankkit.train.loop import train_reranker
    from rankkit.train.scorers import CrossEncoderScorer

    import torch

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    bdir, out = Path(bundle_dir), Path(out_dir)
    model = _prepare_model(bdir)
    train_all = load_dataset(bdir / "scifact", "train")
    test = load_dataset(bdir / "scifact", "test")
    if num_queries:
        train_all, test = train_all.subset(num_queries), test.subset(num_queries)
    train_run, test_run = _read_run(bdir / "bm25-train.trec.gz"), _read_run(bdir / "bm25-test.trec.gz")

    def score(m: CrossEncoderModel, tag: str, dev: Any, dev_run: Any, seconds: float) -> None:
        CrossEncoderScorer(m, m.max_length).rerank(dev, dev_run, 100, 64, "auto").to_trec(out / f"{tag}-dev.trec", tag=tag)
        CrossEncoderScorer(m, m.max_length).rerank(test, test_run, 100, 64, "auto").to_trec(out / f"{tag}-test.trec", tag=tag)
        (out / f"{tag}.json").write_text(json.dumps({"train_seconds": round(seconds, 2)}))

    for name, seed in jobs:
        if time.time() > deadline:
            print(f"deadline: skipping {name} seed {seed}", flush=True)
            continue
        cfg = _job_config(name, seed, model, JOBS[name], max_steps)
        train, dev = holdout(train_all, cfg.data.dev, cfg.seed)
        data = TrainingData(build_epochs(train, train_run, cfg), train_run, dev, train_run)
        t0 = time.time()
        result = train_reranker(cfg, data=data)
        seconds = time.time() - t0
        tag = f"{name}-s{seed}"
        score(CrossEncoderModel.load(str(result.output)), tag, dev, train_run, seconds)
        print(f"done {tag} in {seconds:.1f} s ({result.steps} steps)", flush=True)
        if name in SQUEEZE:
            sq = Path(f"{result.output}-sq{SQUEEZE[name]}")
            squeeze_adapter(result.output, sq, rank=SQUEEZE[name], overwrite=True)
            score(CrossEncoderModel.load(str(sq)), f"{name}-sq{SQUEEZE[name]}-s{seed}", dev, train_run, 0.0)
            cont = _job_config(f"{name}-sq-cont", seed, model, JOBS[name], min(CONTINUE_STEPS, max_steps or 10**9))
            cont.model.init_from, cont.warmup_steps = str(sq), 0
            t1 = time.time()
            res2 = train_reranker(cont, data=data)
            score(CrossEncoderModel.load(str(res2.output)), f"{name}-sq{SQUEEZE[name]}+{CONTINUE_STEPS}-s{seed}",
                  dev, train_run, time.time() - t1)
            print(f"done squeeze of {tag}", flush=True)


def train_all(bundle_dir: Path, out: Path, workers: int, budget_s: float, max_steps: int | None,
              num_queries: int | None, only: list[str] | None) -> None:
    """Run every (job, seed), spread over ``workers`` processes; stop starting jobs after ``budget_s``."""
    import multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    if not (bundle_dir / "scifact").is_dir():
        import tarfile

        with tarfile.open(bundle_dir / "scifact.tar.gz") as tar:
            tar.extractall(bundle_dir, filter="data")
    _prepare_model(bundle_dir)  # once, before the workers start (they read it concurrently)
    names = [n for n in JOBS if not only or n in only]
    todo = [(n, s) for s in SEEDS for n in names]  # seed-major: every job gets one seed early
    chunks = [todo[i::workers] for i in range(workers)]
    deadline = time.time() + budget_s
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(c, str(bundle_dir), str(out), deadline, max_steps, num_queries))
             for c in chunks if c]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    from rankkit.runcard import machine, versions

    info = {"device": _device(), "versions": versions(), "machine": machine(), "workers": workers, "jobs": JOBS, "only": only, "seeds": SEEDS, "max_steps": max_steps,
            "exit_codes": [p.exitcode for p in procs]}
    (out / "matrix_info.json").write_text(json.dumps(info, indent=2))


def _device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def main() -> None:
    """Command line: bundle | train | report (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bundle")
    b.add_argument("--out", type=Path, default=ROOT / ".devbundle")
    t = sub.add_parser("train")
    t.add_argument("--bundle", type=Path, default=ROOT / ".devbundle")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 3))
    t.add_argument("--budget", type=float, default=420.0, help="seconds after which no new job starts")
    t.add_argument("--max-steps", type=int, default=None, help="smoke runs only")
    t.add_argument("--num-queries", type=int, default=None, help="smoke runs only")
    t.add_argument("--only", nargs="*", default=None)
    r = sub.add_parser("report")
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--output", type=Path, default=ROOT / "eval" / "results" / "ce_matrix")
    args = ap.parse_args()
    if args.cmd == "bundle":
        bundle(args.out)
    elif args.cmd == "train":
        train_all(args.bundle, args.out, args.workers, args.budget, args.max_steps, args.num_queries, args.only)
    else:
        sys.path.insert(0, str(ROOT / "eval"))
        from ce_matrix_report import report

        report(args.runs, args.output)


if __name__ == "__main__":
    main()
