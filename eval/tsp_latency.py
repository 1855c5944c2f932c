"""Latency and optimality of the TSPRank decoders (rankkit.rerank.tsp) by list size n.

    .venv/bin/python eval/tsp_latency.py            # -> eval/results/tsp_latency.{json,md}
    .venv/bin/python eval/tsp_latency.py --quick    # a small subset, written to a temp folder

For each n in N_VALUES, ``--instances`` random instances (scores uniform in [0, 1),
generator seeded with ``1000 * n + k``) are decoded by the exact DP (n <= DP_MAX_N), the
MILP on HiGHS (``--milp-time-limit`` seconds, proven optimal or the gap it stopped at),
the heuristic (iterated local search) and LKH (elkai, when installed), one after the
other in one process. Reported per n and method: the median wall time, how many paths
are proven optimal, and the relative gap ``(best - value) / best`` to the best proven
optimum (DP or MILP) where one is known. A second study decodes ``--gap-instances``
instances of n = 13 (seed 13) with the DP and the heuristic (and LKH): mean and worst gap.
Timings depend on the machine and its load: read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_VALUES = (5, 8, 10, 13, 15, 18, 20, 30, 40, 50, 60, 80, 100)
QUICK_N_VALUES = (5, 10, 13, 20)
DP_MAX_N = 16
METHODS = ("held_karp", "milp", "heuristic", "lkh")


def _gap(best: float | None, value: float) -> float | None:
    if best is None:
        return None
    return (best - value) / abs(best) if best != 0 else best - value


def bench_n(n: int, instances: int, milp_time_limit: float, use_lkh: bool) -> dict[str, Any]:
    """Decode ``instances`` random n x n instances with every method; per-method summary."""
    from rankkit.rerank import tsp

    runs: dict[str, list[Any]] = {m: [] for m in METHODS}
    for k in range(instances):
        S = np.random.default_rng(1000 * n + k).random((n, n))
        res = {}
        if n <= DP_MAX_N:
            res["held_karp"] = tsp.held_karp(S)
        res["milp"] = tsp.milp(S, time_limit=milp_time_limit)
        res["heuristic"] = tsp.heuristic(S)
        if use_lkh:
            res["lkh"] = tsp.lkh(S)
        proven = [r.value for r in res.values() if r.optimal]
        best = max(proven) if proven else None
        for name, r in res.items():
            runs[name].append({"seconds": r.seconds, "value": r.value, "optimal": r.optimal, "gap_reported": r.gap,
                               "method": r.method, "gap_to_optimum": _gap(best, r.value)})
    out: dict[str, Any] = {"n": n, "instances": instances}
    for name, rs in runs.items():
        if not rs:
            continue
        gaps = [r["gap_to_optimum"] for r in rs if r["gap_to_optimum"] is not None]
        out[name] = {
            "median_s": statistics.median(r["seconds"] for r in rs),
            "proven_optimal": sum(r["optimal"] for r in rs),
            "gap_mean": float(np.mean(gaps)) if gaps else None,
            "gap_max": float(np.max(gaps)) if gaps else None,
            "gaps_known": len(gaps),
            "runs": rs,
        }
    return out


def gap_study(instances: int, use_lkh: bool) -> dict[str, Any]:
    """Heuristic (and LKH) gap to the DP optimum over ``instances`` uniform instances of n = 13."""
    from rankkit.rerank import tsp

    rng = np.random.default_rng(13)
    gaps: dict[str, list[float]] = {"heuristic": [], **({"lkh": []} if use_lkh else {})}
    seconds: dict[str, list[float]] = {m: [] for m in gaps}
    for _ in range(instances):
        S = rng.random((13, 13))
        best = tsp.held_karp(S).value
        for name, found in gaps.items():
            r = tsp.heuristic(S) if name == "heuristic" else tsp.lkh(S)
            found.append((best - r.value) / best)
            seconds[name].append(r.seconds)
    return {name: {"instances": instances, "gap_mean": float(np.mean(g)), "gap_max": float(np.max(g)),
                   "optimal_share": float(np.mean(np.array(g) <= 1e-12)),
                   "median_s": statistics.median(seconds[name])} for name, g in gaps.items()}


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else (f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s")


def _fmt_gap(m: dict[str, Any] | None) -> str:
    if not m or m["gap_mean"] is None:
        return "-"
    return f"{100 * m['gap_mean']:.3f} / {100 * m['gap_max']:.3f}"


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    card, res = report["run_card"], report["results"]
    m = card["machine"]
    versions = card["versions"]
    header = ("| n | DP | MILP | MILP proven optimal | MILP reported gap (max) | heuristic | heuristic gap % | "
              "LKH | LKH gap % |")
    lines = [f"# TSPRank decoders: latency and optimality by n ({card['date']})", "",
             (f"`{card['command']}`; CPU: {m.get('cpu_model', '?')}, {m.get('cpus')} cores; numpy "
              f"{versions.get('numpy')}, highspy {versions.get('highspy')}, elkai "
              f"{versions.get('elkai', 'not installed')}."), "",
             (f"Median wall time per instance ({res['config']['instances']} uniform [0, 1) instances per n); "
              f"MILP time limit {res['config']['milp_time_limit']} s. Gap = (best proven optimum - value) / "
              "optimum, in %, mean / worst, over the instances with a proven optimum."), "",
             header, "|---|---|---|---|---|---|---|---|---|"]
    for row in res["by_n"]:
        dp, mi, he, lk = (row.get(k) for k in METHODS)
        reported = [r["gap_reported"] for r in mi["runs"] if r["gap_reported"] is not None]
        lines.append(f"| {row['n']} | {_fmt_s(dp and dp['median_s'])} | {_fmt_s(mi['median_s'])} | "
                     f"{mi['proven_optimal']}/{row['instances']} | "
                     f"{'-' if not reported else f'{100 * max(reported):.3f} %'} | {_fmt_s(he['median_s'])} | "
                     f"{_fmt_gap(he)} | {_fmt_s(lk and lk['median_s'])} | {_fmt_gap(lk)} |")
    lines += ["", "## Gap to the DP optimum, n = 13", "",
              "| method | instances | mean gap % | worst gap % | optimal | median time |", "|---|---|---|---|---|---|"]
    for name, g in res["gap_n13"].items():
        lines.append(f"| {name} | {g['instances']} | {100 * g['gap_mean']:.4f} | {100 * g['gap_max']:.3f} | "
                     f"{100 * g['optimal_share']:.0f} % | {_fmt_s(g['median_s'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: run the benchmark and write ``<output>.json`` and ``<output>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"n in {QUICK_N_VALUES}, 2 instances, 20 gap instances; "
                        "writes to a temp folder unless --output is given")
    parser.add_argument("--instances", type=int, default=None, help="instances per n (default 5, quick 2)")
    parser.add_argument("--gap-instances", type=int, default=None, help="n = 13 instances (default 200, quick 20)")
    parser.add_argument("--milp-time-limit", type=float, default=30.0)
    parser.add_argument("--output", default=None, help="results path prefix (.json and .md are appended); default "
                        "eval/results/tsp_latency")
    args = parser.parse_args()
    instances = args.instances or (2 if args.quick else 5)
    gap_instances = args.gap_instances or (20 if args.quick else 200)
    output = args.output or (str(Path(tempfile.mkdtemp(prefix="tsp-latency-")) / "tsp_latency") if args.quick
                             else str(ROOT / "eval" / "results" / "tsp_latency"))

    from rankkit.rerank.tsp import lkh_available
    from rankkit.runcard import run_card, write_json

    use_lkh = lkh_available()
    n_values = QUICK_N_VALUES if args.quick else N_VALUES
    config = {"n_values": list(n_values), "instances": instances, "gap_instances": gap_instances,
              "milp_time_limit": args.milp_time_limit, "dp_max_n": DP_MAX_N, "lkh": use_lkh, "quick": args.quick,
              "scores": "uniform [0, 1), numpy default_rng(1000 * n + k); gap study default_rng(13)"}
    t0 = time.perf_counter()
    by_n = []
    for n in n_values:
        row = bench_n(n, instances, args.milp_time_limit, use_lkh)
        by_n.append(row)
        print(f"n={n}: " + ", ".join(f"{m} {_fmt_s(row[m]['median_s'])}" for m in METHODS if m in row), flush=True)
    gaps = gap_study(gap_instances, use_lkh)
    card = run_card(config, seed=None, wall_time_s=time.perf_counter() - t0,
                    command="python " + " ".join(sys.argv))
    for pkg in ("highspy", "elkai"):
        try:
            card["versions"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    report = {"results": {"config": config, "by_n": by_n, "gap_n13": gaps}, "run_card": card}
    write_json(report, output + ".json")
    md = markdown(report)
    Path(output + ".md").write_text(md, encoding="utf-8")
    print(md)
    print(f"wrote {output}.json and {output}.md")


if __name__ == "__main__":
    main()
