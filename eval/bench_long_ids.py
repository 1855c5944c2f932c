"""Benchmark: evaluation cost with very long ids, rankkit (compact keys) vs ranx on the ids.

    python eval/bench_long_ids.py                      # 300 SciFact test queries x 100 docs, 100,000-char ids
    python eval/bench_long_ids.py --length 5000 --rounds 1 --old-length 200 --output /tmp/long_ids_smoke

ranx (numba) compiles its kernels for a fixed-width unicode type as wide as the longest
docid, so one long docid used to make evaluation cost grow with the id's length.
rankkit now hands ranx compact fixed-width keys and maps the results back.

The run: every SciFact test query (300) with its judged docids plus random unjudged
corpus docids up to ``--depth`` (100) documents, random scores rounded to two decimals
(so many ties, whose order the metrics depend on), seed ``--seed``. No BM25, no Java.
The same run and qrels are then renamed so that every docid is a unique id of
``--length`` characters, in two layouts: ``suffix`` (the docid, then filler: ids
differ early) and ``prefix`` (filler, then the docid: a long shared prefix, the worst
case for comparing and sorting ids). One Python string object per id is shared by the
run and the qrels (as a renaming in Python produces), so the figures measure
rankkit's work, not the hashing of thousands of copies of one 100 kB string.

- Equality: ``rankkit.evaluate`` on each renamed pair must give the same means and
  per-query values as on the original ids, bit for bit (both renamings keep the ids'
  sorted order, so tied scores rank alike); and the same means as ranx called on the
  original ids with the ties put in trec_eval's order (:func:`before`).
- Speed: after one warm-up call each (numba cache load, first compile), ``--rounds``
  rounds alternate short, suffix and prefix ids; wall time of ``rankkit.evaluate`` per
  round and the median per layout. The bar: long / short <= 2.
- The old way (peer): the evaluation before compact keys (ranx called directly on the
  ids, as ``rankkit.evaluate`` did) with ids of ``--old-length`` characters, in a
  subprocess with a private, empty numba cache (so nothing is left in the installed
  cache) and a ``--old-timeout``: first the short ids (compiles every kernel), then
  the long ids twice (the first call adds what a new id width costs: compiling the
  width-specific kernels; the second is warm). Peak RSS after each step. Skipped with a
  note if it runs past the timeout.

Results (with a run card: command, machine and CPU model, versions, date) go to
``<output>.json`` and a Markdown table to ``<output>.md`` (default
``eval/results/long_ids``). Exits 1 if a metric differs or the 2x bar is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METRICS = ["ndcg@10", "recall@100", "map@100", "mrr@10", "precision@10"]


def _data_dir() -> Path:
    value = os.environ.get("RANKKIT_DATA_DIR")
    path = Path(value) if value else ROOT.parent / "shared" / "data"
    if not (path / "beir" / "scifact").is_dir():
        sys.exit(f"SciFact not found under {path}/beir/scifact: set RANKKIT_DATA_DIR to the shared data folder")
    return path / "beir" / "scifact"


def build(depth: int, seed: int) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """SciFact test qrels and a synthetic run: judged + random unjudged corpus docids, scores rounded (ties)."""
    scifact = _data_dir()
    corpus = []
    with open(scifact / "corpus.jsonl") as fh:
        for line in fh:
            corpus.append(json.loads(line)["_id"])
    qrels: dict[str, dict[str, int]] = {}
    with open(scifact / "qrels" / "test.tsv") as fh:
        next(fh)
        for line in fh:
            q, d, g = line.split()
            qrels.setdefault(q, {})[d] = int(g)
    rng = random.Random(seed)
    run: dict[str, dict[str, float]] = {}
    for q, judged in qrels.items():
        docs = list(judged)
        while len(docs) < depth:
            d = rng.choice(corpus)
            if d not in docs:
                docs.append(d)
        rng.shuffle(docs)
        run[q] = {d: round(rng.random(), 2) for d in docs}
    return qrels, run


def long_names(docids: set[str], length: int, layout: str) -> dict[str, str]:
    """docid -> a unique id of ``length`` characters (``suffix``: docid first; ``prefix``: docid last).

    Both renamings keep the ids' sorted order, so tied scores rank the same way (trec_eval
    breaks ties by docid): ``suffix`` appends ``/`` and filler (``/`` sorts before every
    character of the ids); ``prefix`` puts the filler first and the docid's position in
    sorted order, zero-padded, last.
    """
    out = {}
    for i, d in enumerate(sorted(docids)):
        if layout == "suffix":
            out[d] = f"{d}/{'x' * (length - len(d) - 1)}"
        else:
            tail = f"{i:08d}"
            out[d] = f"{'x' * (length - len(tail) - 1)}/{tail}"
    return out


def rename(nested: dict[str, dict[str, Any]], names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The same nested dict with every docid replaced (insertion order kept)."""
    return {q: {names[d]: v for d, v in docs.items()} for q, docs in nested.items()}


def cpu_info() -> dict[str, str]:
    """CPU details from ``lscpu`` (model name, family, model, stepping, MHz, caches, hypervisor)."""
    keep = ("Model name", "Vendor ID", "CPU family", "Model", "Stepping", "CPU max MHz", "BogoMIPS", "L2 cache",
            "L3 cache", "Hypervisor vendor", "CPU(s)")
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keep:
            info[key.strip()] = value.strip()
    return info


def _rss_mb() -> float:
    """Peak resident memory of this process image in MB (VmHWM: reset by exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def before(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Reference means: ranx on the ids themselves (no compact keys), ties put in trec_eval's order.

    The scores are replaced by ``n - rank`` in :meth:`Run.ranked` order (score descending, ties
    by docid descending), as ``rankkit.evaluate`` does; ranx's own sort of tied scores is unstable.
    """
    import ranx

    from rankkit.types import Qrels, Run

    ranked = Run({q: run[q] for q in qrels if q in run})
    rr = ranx.Run.from_dict({q: {d: float(len(r) - i) for i, (d, _) in enumerate(r)}
                             for q in qrels for r in [ranked.ranked(q) if q in ranked else []]})
    values = ranx.evaluate(Qrels(qrels).to_ranx(), rr, METRICS, make_comparable=True)
    return {m: float(v) for m, v in values.items()}


def old_way_child(length: int, depth: int, seed: int) -> None:
    """Subprocess body: the old evaluation on short ids, then twice on ``length``-char ids; one JSON line per step."""
    import warnings

    warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
    qrels, run = build(depth, seed)
    names = long_names({d for docs in [*qrels.values(), *run.values()] for d in docs}, length, "suffix")
    long_qrels, long_run = rename(qrels, names), rename(run, names)
    steps = [("short ids (cold: compiles every kernel)", qrels, run),
             (f"{length}-char ids, first call (compiles the width-specific kernels)", long_qrels, long_run),
             (f"{length}-char ids, second call (warm)", long_qrels, long_run)]
    for label, q, r in steps:
        t = time.perf_counter()
        values = before(r, q)
        seconds = time.perf_counter() - t
        print(json.dumps({"step": label, "seconds": round(seconds, 3), "peak_rss_mb": round(_rss_mb(), 1),
                          "metrics": values}), flush=True)


def old_way(length: int, depth: int, seed: int, timeout: float) -> dict[str, Any]:
    """Run :func:`old_way_child` in a subprocess with a private numba cache; partial results survive a timeout."""
    with tempfile.TemporaryDirectory(prefix="bench-long-ids-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cmd = [sys.executable, __file__, "--old-child", str(length), "--depth", str(depth), "--seed", str(seed)]
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            out, status = proc.stdout, f"exit {proc.returncode}"
            if proc.returncode:
                status += ": " + (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300]
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or ""
            out = raw.decode() if isinstance(raw, bytes) else raw
            status = f"timed out after {timeout:.0f} s (skipped the rest)"
        wall = time.perf_counter() - t
    steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {"length": length, "timeout_s": timeout, "status": status, "wall_s": round(wall, 1), "steps": steps}


def bench(length: int, depth: int, seed: int, rounds: int, same_length: int) -> dict[str, Any]:
    """Time rankkit.evaluate on short, suffix-long and prefix-long ids; check every metric is identical."""
    from rankkit.evaluate import evaluate
    from rankkit.types import Qrels, Run

    qrels_d, run_d = build(depth, seed)
    docids = {d for docs in [*qrels_d.values(), *run_d.values()] for d in docs}
    pairs: dict[str, tuple[Run, Qrels]] = {"short": (Run(run_d, name="random"), Qrels(qrels_d))}
    for layout in ("suffix", "prefix"):
        names = long_names(docids, length, layout)
        pairs[layout] = (Run(rename(run_d, names), name="random"), Qrels(rename(qrels_d, names)))
    if same_length:  # rankkit at the old way's id length, for the side-by-side row
        names = long_names(docids, same_length, "suffix")
        pairs[f"suffix{same_length}"] = (Run(rename(run_d, names), name="random"), Qrels(rename(qrels_d, names)))

    warmup = {}
    for key, (run, qrels) in pairs.items():
        t = time.perf_counter()
        evaluate(run, qrels, METRICS)
        warmup[key] = round(time.perf_counter() - t, 3)

    seconds: dict[str, list[float]] = {k: [] for k in pairs}
    values: dict[str, dict[str, float]] = {}
    order = list(pairs)
    for i in range(rounds):
        for key in order if i % 2 == 0 else order[::-1]:
            run, qrels = pairs[key]
            t = time.perf_counter()
            values[key] = evaluate(run, qrels, METRICS)
            seconds[key].append(time.perf_counter() - t)

    per_query = {k: evaluate(run, qrels, METRICS, per_query=True) for k, (run, qrels) in pairs.items()}
    identical = {k: values[k] == values["short"] and per_query[k] == per_query["short"] for k in pairs}
    identical["before_on_original_ids"] = values["short"] == before(run_d, qrels_d)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "dataset": "beir/scifact/test", "queries": len(run_d), "depth": depth,
        "entries": sum(len(d) for d in run_d.values()), "unique_docids": len(docids),
        "judgements": sum(len(d) for d in qrels_d.values()), "length": length, "seed": seed, "rounds": rounds,
        "metrics": METRICS, "values": values["short"], "identical": identical, "warmup_s": warmup,
        "seconds": {k: [round(s, 4) for s in v] for k, v in seconds.items()},
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "ratio_vs_short": {k: round(v / median["short"], 3) for k, v in median.items() if k != "short"},
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def _markdown(res: dict[str, Any]) -> str:
    card = res["run_card"]
    mach, ver = card["machine"], card["versions"]
    b, old = res["rankkit"], res.get("old_way")
    n = b["length"]
    cpu = res.get("cpu", {})
    cpu_desc = ", ".join(f"{k.lower()} {cpu[k]}" for k in ("CPU family", "Model", "Stepping", "BogoMIPS",
                                                             "L3 cache", "Hypervisor vendor") if k in cpu)
    label = {"short": "original SciFact ids (<= 9 chars)", "suffix": f"{n:,}-char ids, docid first",
             "prefix": f"{n:,}-char ids, shared prefix, docid last"}
    lines = [
        "# Evaluation with very long ids (SciFact test)", "",
        f"{b['queries']} queries x {b['depth']} docs = {b['entries']} run entries ({b['unique_docids']} unique "
        f"docids, {b['judgements']} judgements), random scores rounded to 2 decimals (ties), seed {b['seed']}; "
        f"metrics {', '.join(b['metrics'])}; {b['rounds']} alternating rounds after one warm-up call each; "
        f"{card['date']}.  ",
        f"Machine: {mach.get('cpu_model', '?')} ({cpu_desc}), {mach.get('cpus')} cores, {mach.get('memory_gb')} GB "
        f"(shared with other jobs); Python {ver.get('python')}, ranx {ver.get('ranx')}, numpy {ver.get('numpy')}, "
        f"numba {res['numba']}. Command: `{card['command']}`.", "",
        "## rankkit.evaluate (compact keys)", "",
        "| ids | median s | per round s | vs short | metrics identical |", "|---|---|---|---|---|",
    ]
    for key, secs in b["seconds"].items():
        name = label[key] if key in label else f"{int(key.removeprefix('suffix')):,}-char ids, docid first"
        ratio = "1" if key == "short" else f"{b['ratio_vs_short'][key]:.2f}x"
        lines.append(f"| {name} | {b['median_s'][key]:.3f} | {', '.join(f'{s:.3f}' for s in secs)} | {ratio} | "
                     f"{'yes' if b['identical'][key] else 'NO'} |")
    worst = max(b["ratio_vs_short"][k] for k in ("suffix", "prefix"))
    lines += ["", f"Bar (long / short <= 2): {'met' if worst <= 2 else 'MISSED'} (worst {worst:.2f}x). Means equal "
              "ranx on the original ids (ties in trec_eval's order) bit for bit: "
              f"{'yes' if b['identical']['before_on_original_ids'] else 'NO'}. "
              f"Peak RSS {b['peak_rss_mb']:.0f} MB (both {n:,}-char renamings held at once).", ""]
    if old:
        lines += [f"## The old way: rankkit's previous evaluation (ranx on the ids) with {old['length']:,}-char ids "
                  "(subprocess, empty numba cache)", "",
                  f"Status: {old['status']}; subprocess wall {old['wall_s']} s.", "",
                  "| step | s | peak RSS MB | metrics equal rankkit's |", "|---|---|---|---|"]
        for s in old["steps"]:
            same = all(abs(s["metrics"][m] - b["values"][m]) == 0 for m in b["metrics"])
            lines.append(f"| {s['step']} | {s['seconds']:.2f} | {s['peak_rss_mb']:.0f} | {'yes' if same else 'no'} |")
        same_key = f"suffix{old['length']}"
        if same_key in b["median_s"]:
            lines += ["", f"rankkit on the same {old['length']:,}-char ids: {b['warmup_s'][same_key]:.3f} s for its "
                      f"first call, {b['median_s'][same_key]:.3f} s median (its keys have one fixed width, so no "
                      "new compile)."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Command line: run the benchmark and write ``<output>.json`` and ``<output>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=100_000, help="characters of each renamed docid")
    parser.add_argument("--depth", type=int, default=100, help="documents per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old-length", type=int, default=1000, help="id length for the old way (0: skip it)")
    parser.add_argument("--old-timeout", type=float, default=1500.0, help="seconds before the old way is abandoned")
    parser.add_argument("--output", default=str(HERE / "results" / "long_ids"),
                        help="results path prefix (.json and .md are appended)")
    parser.add_argument("--old-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.old_child:
        old_way_child(args.old_child, args.depth, args.seed)
        return

    import numba

    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_write

    t0 = time.perf_counter()
    result: dict[str, Any] = {"numba": numba.__version__, "cpu": cpu_info()}
    result["rankkit"] = bench(args.length, args.depth, args.seed, args.rounds, args.old_length)
    print(json.dumps(result["rankkit"]["median_s"]), json.dumps(result["rankkit"]["ratio_vs_short"]), flush=True)
    if args.old_length:
        result["old_way"] = old_way(args.old_length, args.depth, args.seed, args.old_timeout)
    result["run_card"] = run_card(config=vars(args), seed=args.seed, wall_time_s=time.perf_counter() - t0,
                                  command="python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]))
    write_json(result, args.output + ".json")
    md = _markdown(result)
    with atomic_write(args.output + ".md") as fh:
        fh.write(md)
    print(md)
    b = result["rankkit"]
    if not all(b["identical"].values()):
        sys.exit("metrics differ between id layouts: see " + args.output + ".json")
    if max(b["ratio_vs_short"][k] for k in ("suffix", "prefix")) > 2:
        sys.exit("long ids took more than 2x the short ids' time")


if __name__ == "__main__":
    main()
