"""Inference back-ends side by side: rankkit torch / ONNX fp32 / ONNX int8 vs sentence-transformers.

    RANKKIT_DATA_DIR=../shared/data python eval/bench_backends.py --ce models/ce-scifact-demo

Four parts, in one process, on SciFact test (``Document.contents``, BM25 from ``pipelines/bm25.yaml``):

1. **Cross-encoder speed**, 1,000 pairs (the first 50 queries x BM25 top 20), ``--rounds``
   alternating rounds after a warm-up each. One sequence-classification model (MiniLM
   with a fresh one-logit classifier, seed 0; as ``eval/bench_ce.py``) is scored by
   rankkit (``backend`` torch fp32 / onnx fp32 / onnx int8) and by sentence-transformers'
   ``CrossEncoder.predict`` with its default back-end and with every other CPU back-end
   it offers (``onnx``, ``openvino``; reported as unavailable when it cannot load).
2. **LoRA adapters**: the trained cross-encoder ``--ce`` (a rankkit folder with an adapter)
   on the same pairs: adapter kept (how rankkit scored before this benchmark's issue) vs
   merged at load (the rerank stage's default now) vs onnx int8.
3. **Ranking quality**: ``--ce`` reranking BM25's top ``--depth`` for all 300 test queries
   (interpolated with BM25 by the model's dev weight, as ``pipelines/bm25_ce_demo.yaml``),
   nDCG@10 for torch fp32 and onnx int8; dense retrieval with all-MiniLM-L6-v2 over the
   5,183 documents, nDCG@10 for sentence-transformers (torch fp32) and rankkit onnx int8.
4. **Dense speed**: the same 5,183 documents, encoded once per side in part 3 (timed),
   plus ``--rounds`` alternating rounds on the first 1,000.

Achieved GFLOP/s: multiply-adds of the encoder's matmuls (QKV and output projections,
feed-forward, attention scores and mixing) for the padded batches actually run, times 2,
over the wall time; against the machine's fp32 peak measured as a large ``torch.mm``
(2 threads) and, where ``/proc/cpuinfo`` gives a clock, 32 FLOP/cycle/core (AVX2 FMA).
Results with a run card: ``eval/results/backends.{json,md}``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

log = logging.getLogger("bench_backends")


def _flops(enc: dict[str, Any], batch_size: int, cfg: Any) -> float:
    """FLOPs of the encoder's matmuls over length-sorted batches padded to their longest item."""
    lengths = sorted((len(ids) for ids in enc["input_ids"]), reverse=True)
    h, inter, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    macs = 0.0
    for start in range(0, len(lengths), batch_size):
        b, seq = len(lengths[start:start + batch_size]), lengths[start]
        macs += layers * b * seq * (4 * h * h + 2 * h * inter + 2 * seq * h)
    return 2 * macs


def _peak() -> dict[str, float | None]:
    """fp32 GFLOP/s of a 2048 x 2048 torch.mm, and the AVX2-FMA peak from the clock in /proc/cpuinfo."""
    import os

    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(10):
        torch.mm(a, b)
    sgemm = 10 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9
    mhz = None
    try:
        mhz = max(float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        pass
    return {"sgemm_gflops": sgemm, "cpu_mhz": mhz,
            "avx2_fma_peak_gflops": (os.cpu_count() or 1) * 32 * mhz / 1000 if mhz else None}


def _rounds(sides: dict[str, Any], rounds: int, n: int) -> dict[str, Any]:
    """Warm each side up, then time ``rounds`` strictly alternating rounds; items/s per round and median."""
    out: dict[str, Any] = {name: {"per_s": [], "error": None} for name in sides}
    for name, fn in sides.items():
        try:
            fn(warm=True)
        except Exception as exc:  # a peer back-end that cannot load is reported, not fatal
            out[name]["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            log.warning("%s unavailable: %s", name, out[name]["error"])
    for r in range(rounds):
        for name, fn in sides.items():
            if out[name]["error"]:
                continue
            t = time.perf_counter()
            out[name]["result"] = fn(warm=False)
            out[name]["per_s"].append(n / (time.perf_counter() - t))
            log.info("round %d %s: %.1f/s", r + 1, name, out[name]["per_s"][-1])
    for entry in out.values():
        entry["median_per_s"] = statistics.median(entry["per_s"]) if entry["per_s"] else None
    return out


def ce_speed(dataset: Any, rounds: int, batch_size: int, max_length: int) -> dict[str, Any]:
    """Part 1: the same seqcls model scored by rankkit's back-ends and by sentence-transformers' back-ends."""
    import torch
    from bench_ce import _pairs
    from sentence_transformers import CrossEncoder

    from rankkit.models import resolve_model
    from rankkit.rerank.ce_model import CrossEncoderModel

    q, d, _, sizes = _pairs(dataset, 50, 20)
    pairs = [[a, b] for a, b in zip(q, d, strict=True)]
    tmp = Path(tempfile.mkdtemp(prefix="bench_backends_"))
    fresh = CrossEncoderModel.new(resolve_model("minilm"), head="hf", max_length=max_length, seed=0)
    fresh.save(tmp / "ce")
    ours = CrossEncoderModel.load(str(tmp / "ce"), max_length=max_length)
    identity = torch.nn.Identity()

    def rk(backend: str, precision: str) -> Any:
        def run(warm: bool) -> np.ndarray:
            k = batch_size if warm else len(q)
            return ours.score(q[:k], d[:k], batch_size=batch_size, device="cpu", backend=backend, precision=precision)
        return run

    def st(backend: str) -> Any:
        holder: dict[str, Any] = {}

        def run(warm: bool) -> np.ndarray:
            if "m" not in holder:
                holder["m"] = CrossEncoder(str(tmp / "ce"), device="cpu", max_length=max_length, backend=backend,
                                           activation_fn=identity, local_files_only=True)
            k = batch_size if warm else len(pairs)
            return np.asarray(holder["m"].predict(pairs[:k], batch_size=batch_size, show_progress_bar=False,
                                                  activation_fn=identity), dtype=np.float32).reshape(-1)
        return run

    sides = {"rankkit torch fp32": rk("torch", "fp32"), "rankkit onnx fp32": rk("onnx", "fp32"),
             "rankkit onnx int8": rk("onnx", "int8"), "sentence-transformers (default: torch)": st("torch"),
             "sentence-transformers onnx": st("onnx"), "sentence-transformers openvino": st("openvino")}
    res = _rounds(sides, rounds, len(q))
    ref = res["rankkit torch fp32"]["result"]
    flops = _flops(ours.tokenize(q, d), batch_size, ours.encoder.config)
    for entry in res.values():
        if "result" in entry:
            entry["max_abs_diff_vs_rankkit_torch"] = float(np.max(np.abs(entry.pop("result") - ref)))
            entry["gflops"] = flops * entry["median_per_s"] / len(q) / 1e9
    return {"pairs": len(q), "queries": len(sizes), "max_length": max_length, "batch_size": batch_size,
            "gflop_per_pass": flops / 1e9, "sides": res}


def lora_speed(model: str, dataset: Any, rounds: int, batch_size: int) -> dict[str, Any]:
    """Part 2: the trained LoRA cross-encoder, adapter kept vs merged vs onnx int8, on the part-1 pairs."""
    from bench_ce import _pairs

    from rankkit.rerank.ce_model import CrossEncoderModel

    q, d, _, _ = _pairs(dataset, 50, 20)
    kept = CrossEncoderModel.load(model)
    merged = CrossEncoderModel.load(model, merge=True)

    def side(m: Any, backend: str, precision: str) -> Any:
        def run(warm: bool) -> np.ndarray:
            k = batch_size if warm else len(q)
            return m.score(q[:k], d[:k], batch_size=batch_size, device="cpu", backend=backend, precision=precision)
        return run

    res = _rounds({"adapter kept (before), torch fp32": side(kept, "torch", "fp32"),
                   "adapter merged, torch fp32": side(merged, "torch", "fp32"),
                   "adapter merged, onnx int8": side(merged, "onnx", "int8")}, rounds, len(q))
    ref = res["adapter kept (before), torch fp32"]["result"]
    flops = _flops(merged.tokenize(q, d), batch_size, merged.encoder.config)
    for entry in res.values():
        entry["max_abs_diff_vs_kept"] = float(np.max(np.abs(entry.pop("result") - ref)))
        entry["gflops"] = flops * entry["median_per_s"] / len(q) / 1e9
    return {"model": model, "pairs": len(q), "max_length": merged.max_length, "sides": res}


def quality(model: str, dataset: Any, depth: int, rounds: int) -> dict[str, Any]:
    """Parts 3 and 4: nDCG@10 of BM25 >> CE and of dense retrieval per back-end, and dense encoding speed."""
    from rankkit.evaluate import evaluate
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.cross_encoder import CrossEncoder
    from rankkit.retrieve.dense import Dense, Encoder

    bm25 = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", dataset, show_progress=False)(dataset.queries)
    out: dict[str, Any] = {"ce_depth": depth, "ce": {}, "dense": {}, "dense_speed": {}}
    for backend, precision in (("torch", "fp32"), ("onnx", "int8")):
        stage = CrossEncoder(dataset, model=model, depth=depth, interpolate="auto", backend=backend,
                             precision=precision, show_progress=False)
        t = time.perf_counter()
        run = stage(dataset.queries, bm25)
        out["ce"][f"{backend} {precision}"] = {
            "ndcg@10": evaluate(run, dataset.qrels, ["ndcg@10"])["ndcg@10"], "seconds": time.perf_counter() - t,
            "pairs": sum(min(depth, len(bm25[q.qid])) for q in dataset.queries if q.qid in bm25)}
    docs = list(dataset.docs_iter())
    with tempfile.TemporaryDirectory(prefix="bench_backends_dense_") as tmp:
        for label, backend, precision in (("sentence-transformers torch fp32", "torch", "fp32"),
                                          ("rankkit onnx int8", "onnx", "int8")):
            stage = Dense(dataset, backend=backend, precision=precision, cache_dir=tmp, show_progress=False)
            t = time.perf_counter()
            run = stage(dataset.queries)
            out["dense"][label] = {"ndcg@10": evaluate(run, dataset.qrels, ["ndcg@10"])["ndcg@10"],
                                   "seconds_index_and_search": time.perf_counter() - t,
                                   "docs_per_s": len(docs) / (time.perf_counter() - t)}
    texts = [doc.contents for doc in docs[:1000]]
    encoders = {"sentence-transformers torch fp32": Encoder(backend="torch", precision="fp32"),
                "rankkit onnx fp32": Encoder(backend="onnx", precision="fp32"),
                "rankkit onnx int8": Encoder(backend="onnx", precision="int8")}

    def enc_side(e: Any) -> Any:
        return lambda warm: e.encode(texts[:64] if warm else texts)

    speed = _rounds({k: enc_side(e) for k, e in encoders.items()}, rounds, len(texts))
    ref = speed["sentence-transformers torch fp32"]["result"]
    bi = encoders["rankkit onnx fp32"].bi_encoder
    flops = _flops(bi.tokenizer(texts, truncation=True, max_length=256), 64, bi.encoder.config)
    for entry in speed.values():
        entry["max_abs_diff_vs_st"] = float(np.max(np.abs(entry.pop("result") - ref)))
        entry["gflops"] = flops * entry["median_per_s"] / len(texts) / 1e9
    out["dense_speed"] = {"docs": len(texts), "sides": speed}
    return out


def _md(res: dict[str, Any]) -> str:
    card, peak = res["run_card"], res["peak"]
    m = card["machine"]
    lines = ["# Inference back-ends on SciFact test", "",
             f"Machine: {m.get('cpu_model')}, {m.get('cpus')} cores, {m.get('memory_gb')} GB; {card['date']}; "
             f"command: `{card['command']}`.  ",
             f"fp32 peak: torch.mm 2048x2048 {peak['sgemm_gflops']:.0f} GFLOP/s"
             + (f", AVX2-FMA at {peak['cpu_mhz']:.0f} MHz {peak['avx2_fma_peak_gflops']:.0f} GFLOP/s"
                if peak["avx2_fma_peak_gflops"] else "") + ".", ""]

    def table(title: str, part: dict[str, Any], unit: str, diff_key: str) -> None:
        sides = part["sides"]
        base = next(iter(sides.values()))["median_per_s"]
        lines.extend([f"## {title}", "", f"| side | {unit}/s (median) | per round | x first row | GFLOP/s | "
                      "max abs diff |", "|---|---|---|---|---|---|"])
        for name, e in sides.items():
            if e.get("error"):
                lines.append(f"| {name} | unavailable: {e['error']} | | | | |")
                continue
            lines.append(f"| {name} | {e['median_per_s']:.1f} | {', '.join(f'{v:.1f}' for v in e['per_s'])} | "
                         f"{e['median_per_s'] / base:.2f} | {e['gflops']:.0f} | {e[diff_key]:.2e} |")
        lines.append("")

    table(f"Cross-encoder: {res['ce_speed']['pairs']} pairs, max length {res['ce_speed']['max_length']}, "
          "MiniLM + fresh seqcls head", res["ce_speed"], "pairs", "max_abs_diff_vs_rankkit_torch")
    table(f"Trained LoRA cross-encoder `{res['lora']['model']}` (max length {res['lora']['max_length']})",
          res["lora"], "pairs", "max_abs_diff_vs_kept")
    table(f"Dense encoding: {res['quality']['dense_speed']['docs']} documents, MiniLM, max length 256",
          res["quality"]["dense_speed"], "docs", "max_abs_diff_vs_st")
    q = res["quality"]
    lines.extend(["## Ranking quality (nDCG@10, 300 queries)", "", "| run | back-end | nDCG@10 | seconds |",
                  "|---|---|---|---|"])
    for k, e in q["ce"].items():
        lines.append(f"| BM25 >> CE~BM25 (top {q['ce_depth']}) | {k} | {e['ndcg@10']:.4f} | {e['seconds']:.0f} |")
    for k, e in q["dense"].items():
        lines.append(f"| dense (5,183 docs, index + search) | {k} | {e['ndcg@10']:.4f} | "
                     f"{e['seconds_index_and_search']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: run the four parts and write ``<output>.json`` and ``<output>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ce", required=True, help="trained rankkit cross-encoder folder (LoRA adapter)")
    parser.add_argument("--depth", type=int, default=20, help="BM25 candidates reranked in the quality part")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per pair in part 1")
    parser.add_argument("--output", default=str(HERE / "results" / "backends"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import transformers

    from rankkit.data import load_dataset
    from rankkit.runcard import run_card, write_json

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    t0 = time.perf_counter()
    dataset = load_dataset("beir/scifact/test")
    res: dict[str, Any] = {"peak": _peak()}
    res["ce_speed"] = ce_speed(dataset, args.rounds, args.batch_size, args.max_length)
    res["lora"] = lora_speed(args.ce, dataset, args.rounds, args.batch_size)
    res["quality"] = quality(args.ce, dataset, args.depth, args.rounds)
    res["run_card"] = run_card(vars(args), None, time.perf_counter() - t0)
    write_json(res, f"{args.output}.json")
    Path(f"{args.output}.md").write_text(_md(res))
    print(_md(res))


if __name__ == "__main__":
    main()
