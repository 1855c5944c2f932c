"""FAISS index kinds side by side: build time, memory, queries/s and recall@100 against exact search.

Two corpora, each indexed as ``flat`` (exact), ``ivf_flat``, ``ivf_pq`` and ``hnsw`` through
:class:`rankkit.index.faiss.DenseIndex` (create + train + add, the incremental path):

- (a) 1,000,000 random 384-d float32 vectors (numpy ``default_rng(0)``, L2-normalised) with
  1,000 random unit queries (``default_rng(1)``). Random vectors have no cluster structure:
  IVF cells and HNSW neighbourhoods carry little information about the true neighbours, so
  this is the hardest case for approximate search and its recall a lower bound (``nprobe``
  up to 1,024 of 4,000 lists and ``efSearch`` up to 2,048 show how far that is);
- (b) BEIR SciFact (5,183 documents) encoded with all-MiniLM-L6-v2 (rankkit's ``Encoder``
  through the ``dense`` stage, offline model; the stage's cached flat index is reused), with
  the 300 SciFact test queries; nDCG@10 of each index's top 100 is reported too.

Per index: build time (train + add), index memory (bytes of ``faiss.serialize_index`` and the
process RSS delta over the build), then per search setting (``nprobe`` for IVF, ``efSearch``
for HNSW) queries/s at k = 100 (one batch of all queries) and recall@100 against the flat
index's results on the same queries. Parameters: ``nlist`` about ``4 * sqrt(n)``
(``rankkit.index.faiss.auto_nlist``: 4,000 for 1M, capped at n / 39 for SciFact), k-means on
the default ``train_size`` (40 per list), IVF-PQ with 8-bit codes and ``pq_m`` 48 (and 96 on
SciFact), HNSW with M = 16 (and 32 on SciFact). HNSW on 1M is the slow build: the script
first builds 100,000 vectors with M = 16, efConstruction = 40, projects the 1M build time
from it and lowers efConstruction (down to 16) to fit ``--hnsw-budget-s``; if even that does
not fit, HNSW is built on the first vectors that fit and recall is measured against exact
search over that prefix (the results say so).

Usage::

    RANKKIT_DATA_DIR=../shared/data .venv/bin/python eval/faiss_bench.py   # -> eval/results/faiss_bench.{json,md}
    .venv/bin/python eval/faiss_bench.py --quick                            # 50,000 vectors, to a temp folder
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
K = 100
log = logging.getLogger("faiss_bench")


def _rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap memory back to the OS (glibc), so RSS deltas measure one build."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    """Peak resident set size (VmHWM) of this process in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _unit(rng: np.random.Generator, n: int, dim: int, chunk: int = 100_000) -> np.ndarray:
    """``n`` random unit vectors (float32), generated in chunks to bound temporary memory."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + len(block)] = block
    return out


def _recall(found: list[list[str]], truth: list[set[str]], k: int) -> float:
    return float(np.mean([len(truth_q & set(f[:k])) / min(k, len(truth_q)) for f, truth_q in zip(found, truth)]))


def _search_settings(kind: str, settings: list[int]) -> list[dict[str, int]]:
    if kind.startswith("ivf"):
        return [{"nprobe": v} for v in settings]
    if kind == "hnsw":
        return [{"ef_search": v} for v in settings]
    return [{}]


def bench_index(vectors: np.ndarray, docids: list[str], queries: np.ndarray, truth: list[set[str]] | None,
                kind: str, params: dict[str, Any], search: list[int], qrels: Any = None,
                qids: list[str] | None = None, sample_recall: bool = False
                ) -> tuple[dict[str, Any], list[list[str]] | None]:
    """Build one index (create + train + add), measure memory, then search with each setting.

    With ``sample_recall``, also the recall that ``DenseIndex.measure_recall`` logs by default
    (256 stored vectors as queries) for comparison with the real queries'. Returns the result
    row and, for the flat index, its docids per query (the ground truth).
    """
    import faiss

    from rankkit.index.faiss import DenseIndex

    _release_freed_memory()
    rss0 = _rss()
    peak_ok = _reset_peak()
    start = time.perf_counter()
    index = DenseIndex.create(vectors.shape[1], kind, **params, gpu="auto")
    index.train(vectors)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    index.add(docids, vectors)
    add_s = time.perf_counter() - start
    peak_delta = _peak() - rss0 if peak_ok else None
    _release_freed_memory()
    rss_delta = _rss() - rss0
    index_bytes = int(faiss.serialize_index(index.index).nbytes)
    row: dict[str, Any] = {"kind": kind, "count": len(docids), "params": params, "train_s": round(train_s, 2),
                           "add_s": round(add_s, 2), "build_s": round(train_s + add_s, 2),
                           "index_bytes": index_bytes, "rss_delta_bytes": int(rss_delta), "peak_rss_delta_bytes": peak_delta,
                           "bytes_per_vector": round(index_bytes / len(docids), 1), "searches": []}
    log.info("%s %s: build %.1f s (train %.1f + add %.1f), %.1f MB serialised, RSS +%.1f MB", kind, params,
             train_s + add_s, train_s, add_s, index_bytes / 1e6, rss_delta / 1e6)
    flat_found = None
    for setting in _search_settings(kind, search):
        if "nprobe" in setting:
            if setting["nprobe"] > index.nlist:
                continue
            index.nprobe = setting["nprobe"]
        if "ef_search" in setting:
            index.ef_search = setting["ef_search"]
        start = time.perf_counter()
        scores, found = index.search(queries, K)
        secs = time.perf_counter() - start
        entry: dict[str, Any] = {**setting, "search_s": round(secs, 3), "qps": round(len(queries) / secs, 1),
                                 f"recall@{K}": 1.0 if truth is None else round(_recall(found, truth, K), 4)}
        if qrels is not None and qids is not None:
            from rankkit.evaluate import evaluate
            from rankkit.types import Run

            run = Run({q: {d: float(s) for d, s in zip(ids, row_s)} for q, ids, row_s in zip(qids, found, scores)})
            entry["ndcg@10"] = round(evaluate(run, qrels, ["ndcg@10"])["ndcg@10"], 4)
        if sample_recall and kind != "flat":
            entry[f"sample_recall@{K}"] = round(index.measure_recall(k=K, sample=256), 4)
        row["searches"].append(entry)
        log.info("  %s: %.0f queries/s, recall@%d %.4f%s", setting or "exact", entry["qps"], K, entry[f"recall@{K}"],
                 f", nDCG@10 {entry['ndcg@10']:.4f}" if "ndcg@10" in entry else "")
        if kind == "flat":
            flat_found = found
    del index
    gc.collect()
    return row, flat_found


def hnsw_plan(vectors: np.ndarray, m: int, budget_s: float, pilot_n: int) -> dict[str, Any]:
    """Time an HNSW build on the first ``pilot_n`` vectors and choose efConstruction (and a prefix) for the budget."""
    import faiss

    n = len(vectors)
    pilot_n = min(pilot_n, n)
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.add(vectors[:pilot_n])
    pilot_s = time.perf_counter() - start
    del index
    growth = 1.0 + 0.5 * max(0.0, math.log10(n / pilot_n))  # per-vector cost grows with n: deeper graph, cache misses
    projected = pilot_s * (n / pilot_n) * growth
    ef_construction, count = 40, n
    if projected > budget_s:
        ef_construction = max(16, int(40 * budget_s / projected))
        projected = projected * ef_construction / 40
    if projected > budget_s:
        count = max(pilot_n, int(n * budget_s / projected) // 1000 * 1000)
        projected = projected * count / n
    plan = {"pilot_n": pilot_n, "pilot_m": m, "pilot_ef_construction": 40, "pilot_s": round(pilot_s, 1),
            "budget_s": budget_s, "ef_construction": ef_construction, "count": count,
            "projected_s": round(projected, 1)}
    log.info("HNSW pilot: %d vectors in %.1f s; 1M plan %s", pilot_n, pilot_s, plan)
    return plan


def bench_random(n: int, dim: int, num_queries: int, pq_ms: list[int], nprobes: list[int], ef_searches: list[int],
                 hnsw_m: int, hnsw_budget_s: float, hnsw_pilot: int) -> dict[str, Any]:
    """Part (a): random unit vectors."""
    import faiss

    from rankkit.index.faiss import auto_nlist

    start = time.perf_counter()
    vectors = _unit(np.random.default_rng(0), n, dim)
    queries = _unit(np.random.default_rng(1), num_queries, dim)
    docids = [str(i) for i in range(n)]
    log.info("random: %d x %d vectors and %d queries in %.1f s", n, dim, num_queries, time.perf_counter() - start)
    nlist = auto_nlist(n)
    rows = []
    flat_row, flat_found = bench_index(vectors, docids, queries, None, "flat", {}, [])
    rows.append(flat_row)
    truth = [set(f) for f in flat_found or []]
    rows.append(bench_index(vectors, docids, queries, truth, "ivf_flat", {"nlist": nlist}, nprobes)[0])
    for pq_m in pq_ms:
        rows.append(bench_index(vectors, docids, queries, truth, "ivf_pq", {"nlist": nlist, "pq_m": pq_m,
                                                                             "pq_nbits": 8}, nprobes)[0])
    plan = hnsw_plan(vectors, hnsw_m, hnsw_budget_s, hnsw_pilot)
    count = plan["count"]
    hnsw_truth = truth
    if count < n:  # exact neighbours within the prefix the HNSW index holds
        _, rows_exact = faiss.knn(queries, vectors[:count], K, metric=faiss.METRIC_INNER_PRODUCT)
        hnsw_truth = [{docids[j] for j in r} for r in rows_exact]
    row = bench_index(vectors[:count], docids[:count], queries, hnsw_truth, "hnsw",
                      {"hnsw_m": hnsw_m, "ef_construction": plan["ef_construction"]}, ef_searches)[0]
    row["plan"] = plan
    rows.append(row)
    return {"n": n, "dim": dim, "queries": num_queries, "nlist": nlist, "rows": rows,
            "note": ("they have no cluster structure, so IVF lists and HNSW neighbourhoods say little about where "
                     "a query's true neighbours are, and the top 100 inner products are barely above the rest")}


def bench_scifact(dataset_id: str, pq_ms: list[int], nprobes: list[int], ef_searches: list[int],
                  hnsw_ms: list[int]) -> dict[str, Any]:
    """Part (b): SciFact encoded with all-MiniLM-L6-v2."""
    from rankkit.data import load_dataset
    from rankkit.index.faiss import auto_nlist
    from rankkit.models import MINILM_ID
    from rankkit.retrieve.dense import Dense

    ds = load_dataset(dataset_id)
    stage = Dense(ds, model=MINILM_ID, device="cpu", show_progress=False, gpu=False)
    start = time.perf_counter()
    corpus = stage.index  # the stage's flat index (encoded with rankkit's Encoder), cached between runs
    vectors, docids = np.ascontiguousarray(corpus.embeddings, dtype=np.float32), list(corpus.docids)
    queries = [q for q in ds.queries if q.qid in ds.qrels]
    qvecs = stage.encoder.encode_queries([q.text for q in queries])
    qids = [q.qid for q in queries]
    log.info("scifact: %d docs, %d queries ready in %.1f s", len(docids), len(queries), time.perf_counter() - start)
    del corpus, stage
    n = len(docids)
    nlist = auto_nlist(n)
    rows = []
    flat_row, flat_found = bench_index(vectors, docids, qvecs, None, "flat", {}, [], ds.qrels, qids)
    rows.append(flat_row)
    truth = [set(f) for f in flat_found or []]
    rows.append(bench_index(vectors, docids, qvecs, truth, "ivf_flat", {"nlist": nlist}, nprobes, ds.qrels, qids,
                            sample_recall=True)[0])
    for pq_m in pq_ms:
        rows.append(bench_index(vectors, docids, qvecs, truth, "ivf_pq", {"nlist": nlist, "pq_m": pq_m, "pq_nbits": 8},
                                nprobes, ds.qrels, qids, sample_recall=True)[0])
    for m in hnsw_ms:
        rows.append(bench_index(vectors, docids, qvecs, truth, "hnsw", {"hnsw_m": m, "ef_construction": 40},
                                ef_searches, ds.qrels, qids, sample_recall=True)[0])
    return {"dataset": dataset_id, "n": n, "dim": int(vectors.shape[1]), "queries": len(queries), "nlist": nlist,
            "model": MINILM_ID, "rows": rows}


def _fmt_params(row: dict[str, Any]) -> str:
    p = dict(row["params"])
    return ", ".join(f"{k}={v}" for k, v in p.items()) or "-"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _table(part: dict[str, Any], ndcg: bool) -> list[str]:
    head = ("| kind | build parameters | search | build s (train + add) | serialised MB | RSS delta MB (peak) | "
            f"queries/s | recall@{K} |" + (f" recall@{K}, stored-vector sample | nDCG@10 |" if ndcg else ""))
    lines = [head, "|" + "---|" * (10 if ndcg else 8)]
    for row in part["rows"]:
        for s in row["searches"]:
            search = ", ".join(f"{k}={v}" for k, v in s.items() if k in ("nprobe", "ef_search")) or "exact"
            count = "" if row["count"] == part["n"] else f" (first {row['count']:,} vectors)"
            lines.append(f"| {row['kind']}{count} | {_fmt_params(row)} | {search} | {row['build_s']:.1f} "
                         f"({row['train_s']:.1f} + {row['add_s']:.1f}) | {_mb(row['index_bytes'])} | "
                         f"{_mb(row['rss_delta_bytes'])} ({_mb(row['peak_rss_delta_bytes'])}) | {s['qps']:.0f} | "
                         f"{s[f'recall@{K}']:.4f} |"
                         + (f" {s.get(f'sample_recall@{K}', 1.0):.4f} | {s['ndcg@10']:.4f} |" if ndcg else ""))
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    card, res = report["run_card"], report["results"]
    m, v = card["machine"], card["versions"]
    lines = [f"# FAISS index kinds: build time, memory, speed, recall ({card['date']})", "",
             f"`{card['command']}`", "",
             (f"CPU: {m.get('cpu_model', '?')}, {m.get('cpus')} cores ({res['threads']} FAISS threads), "
              f"{m.get('memory_gb')} GB; FAISS {res['faiss_version']} ({res['faiss_compile']}), numpy "
              f"{v.get('numpy')}, GPUs seen by FAISS: {res['gpus']}. Load average at start / end: "
              f"{res['loadavg_start']} / {res['loadavg_end']} (the machine is shared: timings are indicative). "
              f"Wall time {card['wall_time_s']:.0f} s."), "",
             (f"Recall@{K} is against the flat (exact) index's top {K} for the same queries; queries/s is one batch "
              f"of all queries at k = {K}. Build = train + add through `DenseIndex.create/train/add`. Serialised MB "
              "is `faiss.serialize_index` (the FAISS structure only: `DenseIndex` keeps the raw float32 embeddings "
              "beside it, memory-mapped when loaded); RSS delta is the process's resident memory after the build "
              "minus before (it undercounts when the allocator reuses memory freed by an earlier index), peak is "
              "the highest resident memory during the build (training sample included) minus before. FAISS runs "
              f"with OMP_WAIT_POLICY={res.get('omp_wait_policy')}: on a shared machine spinning OpenMP threads "
              "wait on descheduled ones (PQ training took 2.6x longer with the default policy here).")]
    if "random" in res:
        r = res["random"]
        lines += ["", f"## (a) {r['n']:,} random {r['dim']}-d unit vectors, {r['queries']:,} random queries", "",
                  (f"Random vectors are the hardest case for ANN: {r['note']}. Recall here is a lower bound; "
                   f"real embeddings (part b) do far better at the same settings. nlist = {r['nlist']}."), ""]
        lines += _table(r, ndcg=False)
        plan = next((row.get("plan") for row in r["rows"] if row["kind"] == "hnsw"), None)
        if plan:
            lines += ["", (f"HNSW plan: a pilot build of {plan['pilot_n']:,} vectors (M = {plan['pilot_m']}, "
                           f"efConstruction = {plan['pilot_ef_construction']}) took {plan['pilot_s']} s; for a "
                           f"budget of {plan['budget_s']:.0f} s the full build used efConstruction = "
                           f"{plan['ef_construction']} on {plan['count']:,} vectors (projected {plan['projected_s']} s).")]
    if "scifact" in res:
        s = res["scifact"]
        lines += ["", f"## (b) SciFact: {s['n']:,} documents, {s['queries']} test queries, {s['model']} "
                      f"({s['dim']}-d)", "", f"nlist = {s['nlist']} (about 4 * sqrt(n), capped at n / 39 so k-means has "
                      "39 points per list); the 8-bit PQ codebooks train on fewer than the 9,984 vectors FAISS "
                      "advises (39 x 256), which a corpus of this size cannot give.", ""]
        lines += _table(s, ndcg=True)
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: run the benchmark and write ``<output>.json`` and ``<output>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="random vectors (part a)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000, help="random queries (part a)")
    parser.add_argument("--threads", type=int, default=2, help="FAISS / torch threads")
    parser.add_argument("--hnsw-budget-s", type=float, default=420.0, help="time allowed for the 1M HNSW build")
    parser.add_argument("--hnsw-pilot", type=int, default=100_000, help="vectors in the HNSW pilot build")
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--parts", nargs="+", default=["random", "scifact"], choices=["random", "scifact"])
    parser.add_argument("--quick", action="store_true", help="50,000 random vectors, 200 queries; writes to a temp "
                        "folder unless --output is given")
    parser.add_argument("--output", default=None, help="results path prefix (.json and .md are appended); default "
                        "eval/results/faiss_bench")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.hnsw_pilot = min(args.n, 50_000), min(args.queries, 200), 10_000
    output = args.output or (str(Path(tempfile.mkdtemp(prefix="faiss-bench-")) / "faiss_bench") if args.quick
                             else str(ROOT / "eval" / "results" / "faiss_bench"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("sentence_transformers", "ir_datasets", "transformers", "httpx", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    shared = ROOT.parent / "shared" / "data"
    if not os.environ.get("RANKKIT_DATA_DIR") and shared.is_dir():
        os.environ["RANKKIT_DATA_DIR"] = str(shared)

    # Before FAISS / torch load OpenMP: on a shared machine, spinning threads that wait for descheduled ones cost
    # more than they save (PQ training of 5,183 vectors: 33 s spinning, 13 s passive, 12 s on one thread).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss

    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    faiss.omp_set_num_threads(args.threads)
    if "scifact" in args.parts:
        import torch

        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {"threads": args.threads, "faiss_version": faiss.__version__,
                               "faiss_compile": faiss.get_compile_options().strip(),
                               "gpus": faiss.get_num_gpus(), "loadavg_start": loadavg_start,
                               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    if "random" in args.parts:
        results["random"] = bench_random(args.n, args.dim, args.queries, pq_ms=[48],
                                         nprobes=[16, 64, 256, 1024], ef_searches=[128, 512, 2048], hnsw_m=16,
                                         hnsw_budget_s=args.hnsw_budget_s, hnsw_pilot=args.hnsw_pilot)
    if "scifact" in args.parts:
        results["scifact"] = bench_scifact(args.dataset, pq_ms=[48, 96], nprobes=[4, 16, 32],
                                           ef_searches=[128, 256], hnsw_ms=[16, 32])
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    config = {k: v for k, v in vars(args).items() if k != "output"}
    card = run_card(config, seed=0, wall_time_s=time.perf_counter() - t0, command="python " + " ".join(sys.argv))
    report = {"results": results, "run_card": card}
    write_json(report, output + ".json")
    md = markdown(report)
    with atomic_write(output + ".md") as fh:
        fh.write(md)
    print(md)
    print(f"wrote {output}.json and {output}.md")


if __name__ == "__main__":
    main()
