"""End-to-end tests of every CLI command, run as a user would (the installed ``rankkit`` script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rankkit_test_helpers import slice_beir

ROOT = Path(__file__).resolve().parents[2]
RANKKIT = [sys.executable, "-m", "rankkit.cli"]


def rk(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*RANKKIT, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=os.environ.copy())
    if check and proc.returncode != 0:
        raise AssertionError(f"rankkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def mini_beir(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BEIR folder: 15 judged SciFact test queries, their docs and 300 distractors."""
    out = slice_beir(scifact_dir, tmp_path_factory.mktemp("mini") / "scifact-mini", "test", 15, 300)
    return out


def test_datasets_lists_offline_collections(data_dir: Path) -> None:
    out = rk("datasets").stdout
    for name in ("beir/scifact/test", "beir/scifact/train", "cranfield", "vaswani"):
        assert name in out
    assert "5183" in out


def test_index_builds_and_reuses(mini_beir: Path, tmp_path: Path) -> None:
    first = rk("index", str(mini_beir), "--output", str(tmp_path / "idx")).stdout
    assert str(tmp_path / "idx") in first and "docs" in first
    again = rk("index", str(mini_beir), "--output", str(tmp_path / "idx"))
    assert again.stdout == first
    assert (tmp_path / "idx" / "rankkit-index.json").exists()


def test_retrieve_then_eval(mini_beir: Path, tmp_path: Path) -> None:
    bm25, mf = tmp_path / "bm25.trec", tmp_path / "mf.trec"
    rk("retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", str(mini_beir), "--output", str(bm25), "--quiet")
    rk("retrieve", "--pipeline", "pipelines/bm25_multifield.yaml", "--dataset", str(mini_beir), "--output", str(mf),
       "--quiet")
    lines = bm25.read_text().splitlines()
    assert lines and all(len(l.split()) == 6 for l in lines)
    card = json.loads(Path(f"{bm25}.json").read_text())
    assert card["seed"] == 42 and "versions" in card and card["wall_time_s"] > 0
    # shards partition the queries
    s0, s1 = tmp_path / "s0.trec", tmp_path / "s1.trec"
    rk("retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", str(mini_beir), "--output", str(s0), "--shard",
       "0/2", "--quiet")
    rk("retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", str(mini_beir), "--output", str(s1), "--shard",
       "1/2", "--quiet")
    merged = sorted(s0.read_text().splitlines() + s1.read_text().splitlines())
    assert merged == sorted(lines)

    report = tmp_path / "report.json"
    out = rk("eval", str(bm25), str(mf), "--qrels", str(mini_beir / "qrels" / "test.tsv"), "-m", "ndcg@10",
             "-m", "recall@100", "--output", str(report)).stdout
    assert "bm25" in out and "mf" in out and "ndcg@10" in out and "holm" in out
    data = json.loads(report.read_text())
    assert data["baseline"] == "bm25" and set(data["means"]) == {"bm25", "mf"}
    assert "run_card" in data


def test_eval_prints_four_decimals_exactly(tmp_path: Path) -> None:
    # q1 finds 1 of its 2 relevant documents and q2 both: recall@10 = (0.5 + 1) / 2 = 0.75, P@4 = (1 + 2) / 8
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\nq1 0 d2 1\nq2 0 d3 1\nq2 0 d4 1\n")
    run = tmp_path / "half.trec"
    run.write_text("q1 Q0 d1 1 4.0 t\nq1 Q0 d9 2 3.0 t\nq1 Q0 d8 3 2.0 t\nq1 Q0 d7 4 1.0 t\n"
                   "q2 Q0 d3 1 4.0 t\nq2 Q0 d4 2 3.0 t\nq2 Q0 d8 3 2.0 t\nq2 Q0 d7 4 1.0 t\n")
    out = rk("eval", str(run), "--qrels", str(qrels), "-m", "recall@10", "-m", "precision@4", "-m", "recall@1").stdout
    row = next(line for line in out.splitlines() if line.startswith("| half"))
    assert [cell.strip() for cell in row.split("|")[2:-1]] == ["0.7500", "0.3750", "0.5000"]
    twin = tmp_path / "twin.trec"
    twin.write_text(run.read_text())
    out = rk("eval", str(run), str(twin), "--qrels", str(qrels), "-m", "recall@1").stdout
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in out.splitlines()
            if line.startswith("| ") and "run" not in line}
    assert rows == {"half": "0.5000", "twin": "0.5000 (p=1.000)"}


def test_retrieve_quiet_shows_no_progress_bar(mini_beir: Path, tmp_path: Path) -> None:
    # BM25 and dense (the corpus encoded into a new index, the model loaded twice: retriever and reranker)
    pipe = tmp_path / "quiet.yaml"
    pipe.write_text(f"name: quiet\nstages:\n  - fuse:\n      method: rrf\n      inputs:\n"
                    f"        - {ROOT / 'pipelines' / 'bm25.yaml'}\n        - {ROOT / 'pipelines' / 'dense.yaml'}\n"
                    "  - dense: {model: sentence-transformers/all-MiniLM-L6-v2, rerank: always, depth: 20}\n")
    quiet = rk("retrieve", "--pipeline", str(pipe), "--dataset", str(mini_beir), "--output", str(tmp_path / "q.trec"),
               "--quiet", "--num-queries", "5")
    assert "%|" not in quiet.stderr and "it/s" not in quiet.stderr, quiet.stderr[-2000:]
    assert len((tmp_path / "q.trec").read_text().splitlines()) > 5 * 20  # the reranked runs keep their tail
    # without --quiet the dense stage does show bars (so the check above can fail); its index is cached now
    loud = rk("retrieve", "--pipeline", "pipelines/dense.yaml", "--dataset", str(mini_beir), "--output",
              str(tmp_path / "l.trec"), "--num-queries", "2")
    assert "%|" in loud.stderr


def test_eval_bad_run_file_is_one_clear_line(tmp_path: Path, mini_beir: Path) -> None:
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 1.5 tag\nq1 Q0 d2 2 notanumber tag\n")
    proc = rk("eval", str(bad), "--qrels", str(mini_beir / "qrels" / "test.tsv"), check=False)
    assert proc.returncode == 2
    assert f"{bad}:2: score 'notanumber' is not a number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_experiment_runs_and_reports(mini_beir: Path, tmp_path: Path) -> None:
    for name in ("bm25.yaml", "bm25_multifield.yaml", "bm25_dense_rrf.yaml", "dense.yaml"):
        shutil.copy(ROOT / "pipelines" / name, tmp_path / name)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"dataset: {mini_beir}\nbaseline: bm25\noutput: out/report.json\n"
                   "pipelines:\n  bm25: bm25.yaml\n  mf: bm25_multifield.yaml\n")
    out = rk("experiment", str(cfg), "--quiet").stdout
    assert "bm25" in out and "mf" in out and "recall@100" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["num_queries"] == 15 and report["comparison"]["baseline"] == "bm25"
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"dataset: {mini_beir}\npipelines: {{bm25: bm25.yaml}}\nbaseline_run: bm25\n")
    proc = rk("experiment", str(bad), check=False)
    assert proc.returncode == 2 and "unknown key 'baseline_run'" in proc.stderr and str(bad) in proc.stderr


def test_reproduce_passes_and_fails_on_drift(mini_beir: Path, tmp_path: Path) -> None:
    shutil.copy(ROOT / "pipelines" / "bm25.yaml", tmp_path / "bm25.yaml")
    measured = tmp_path / "m.trec"
    rk("retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", str(mini_beir), "--output", str(measured),
       "--quiet")
    value = json.loads(rk("eval", str(measured), "--qrels", str(mini_beir / "qrels" / "test.tsv"), "-m",
                          "ndcg@10", "--output", str(tmp_path / "r.json")).stdout and
                       (tmp_path / "r.json").read_text())["results"]["m"]["ndcg@10"]
    good = tmp_path / "good.yaml"
    good.write_text(f"rows:\n  - dataset: {mini_beir}\n    pipeline: bm25.yaml\n    expected: {{ndcg@10: {value:.4f}}}\n")
    ok = rk("reproduce", str(good), "--quiet")
    assert "ok" in ok.stdout
    drift = tmp_path / "drift.yaml"
    drift.write_text(f"rows:\n  - dataset: {mini_beir}\n    pipeline: bm25.yaml\n    expected: {{ndcg@10: {value + 0.01:.4f}}}\n")
    proc = rk("reproduce", str(drift), "--quiet", check=False)
    assert proc.returncode == 1 and "DRIFT" in proc.stdout


def test_unknown_dataset_id_is_a_clear_error() -> None:
    proc = rk("retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", "beir/scifactt/test", "--output",
              "/nonexistent/x.trec", check=False)
    assert proc.returncode == 2
    assert "beir/scifactt/test" in proc.stderr and "Traceback" not in proc.stderr
