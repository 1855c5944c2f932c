"""Wall time of two everyday CLI commands, before and after a change, side by side.

``rankkit retrieve`` (BM25 on a small BEIR folder: 10 SciFact test queries, their judged
documents and distractors, 80 documents) and ``rankkit eval`` (the 300-query SciFact
test BM25 run against its qrels) are each run as a fresh process, alternating the
``before`` checkout (a git revision, run from a temporary worktree through
``PYTHONPATH`` with the same virtual environment) and the working tree, ``--repeats``
times; caches are warm (the Lucene index is built and numba's cache filled before
timing). Results go to ``eval/results/cli_start.{json,md}`` with a run card.

    RANKKIT_DATA_DIR=../shared/data .venv/bin/python eval/bench_cli_start.py --before 6608124
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds one fresh process takes; it runs in the checkout ``PYTHONPATH`` names (``python -m`` puts
    the working directory first on ``sys.path``, before ``PYTHONPATH``)."""
    cwd = env.get("PYTHONPATH") or ROOT
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=str(ROOT / "eval" / "results" / "cli_start"))
    args = parser.parse_args()

    from rankkit_test_helpers import slice_beir

    from rankkit import settings
    from rankkit.runcard import run_card, write_json

    data = settings.data_dir()
    if data is None:
        raise SystemExit("set RANKKIT_DATA_DIR to the shared data folder")
    work = Path(tempfile.mkdtemp(prefix="rankkit-cli-start-"))
    small = slice_beir(data / "beir" / "scifact", work / "small", "test", 10, 70)
    before_tree = work / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(before_tree), args.before], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        env_after = {**os.environ, "PYTHONPATH": str(ROOT)}
        env_before = {**os.environ, "PYTHONPATH": str(before_tree)}
        py = [sys.executable, "-m", "rankkit.cli"]
        for env, tree in ((env_before, before_tree), (env_after, ROOT)):  # each side imports its own checkout
            found = subprocess.run([sys.executable, "-c", "import rankkit; print(rankkit.__file__)"], env=env,
                                   cwd=tree, capture_output=True, text=True, check=True).stdout.strip()
            if not found.startswith(str(tree)):
                raise SystemExit(f"expected rankkit from {tree}, got {found}")
        run_300 = work / "bm25_scifact_test.trec"
        subprocess.run([*py, "retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", "beir/scifact",
                        "--split", "test", "--output", str(run_300), "--quiet"], cwd=ROOT, check=True,
                       env=env_after, capture_output=True)
        commands = {
            "retrieve_bm25_small": [*py, "retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", str(small),
                                    "--output", str(work / "small.trec"), "--quiet"],
            "eval_300_queries": [*py, "eval", str(run_300), "--qrels", str(data / "beir/scifact/qrels/test.tsv")],
        }
        for cmd in commands.values():  # warm-up: index built, numba cache filled, for both checkouts
            _timed(cmd, env_before)
            _timed(cmd, env_after)
        times: dict[str, dict[str, list[float]]] = {n: {"before": [], "after": []} for n in commands}
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                times[name]["before"].append(_timed(cmd, env_before))
                times[name]["after"].append(_timed(cmd, env_after))
        results = {name: {"before_median_s": statistics.median(t["before"]),
                          "after_median_s": statistics.median(t["after"]), **t} for name, t in times.items()}
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, capture_output=True)
    card = run_card({"before": args.before, "repeats": args.repeats, "small_docs": 80,
                     "command": "eval/bench_cli_start.py --before " + args.before}, None, time.perf_counter() - t0)
    write_json({"results": results, "run_card": card}, f"{args.output}.json")
    lines = ["# CLI start: wall time of a fresh process, median of %d (warm caches)" % args.repeats, "",
             f"before = `{args.before}`, after = working tree; CPU: {card['machine'].get('cpu_model', '?')}, "
             f"{card['machine'].get('cpus')} cores; {card['date']}", "",
             "| command | before (s) | after (s) | speed-up |", "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| `{name}` | {r['before_median_s']:.2f} | {r['after_median_s']:.2f} | "
                     f"{r['before_median_s'] / r['after_median_s']:.1f}x |")
    Path(f"{args.output}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
