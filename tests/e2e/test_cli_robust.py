"""End-to-end: `rankkit certify` and `rankkit attack` on a SciFact slice (BM25 >> a tiny cross-encoder, WordNet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankkit_test_helpers import run_cli as rk
from rankkit_test_helpers import slice_beir



@pytest.fixture(scope="module")
def setup(scifact_dir: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SciFact test slice, a tiny untrained cross-encoder and a BM25 >> CE pipeline over it."""
    from rankkit.rerank.ce_model import CrossEncoderModel

    root = tmp_path_factory.mktemp("robust")
    data = slice_beir(scifact_dir, root / "scifact-mini", "test", 4, 200)
    CrossEncoderModel.new(str(tiny_bert), head="mean", max_length=64, seed=1).save(root / "ce")
    (root / "bm25.yaml").write_text("name: bm25\nstages:\n  - bm25: {hits: 100}\n")
    (root / "ce.yaml").write_text("name: bm25>>ce\nstages:\n  - pipeline: bm25.yaml\n"
                                  "  - cross_encoder: {model: ./ce, depth: 12, keep_tail: false}\n")
    (root / "certify.yaml").write_text(f"""
dataset: {data}
split: test
pipeline: ce.yaml
output: out-certify
queries: 3
depth: 12
samples: [10, 20]
ks: [1, 2, 5]
max_words: 40
sets: {{perturbation: {{source: wordnet}}}}
attack: {{budget: 3, max_positions: 4, candidates: 3}}
attack_k: 5
""")
    (root / "attack.yaml").write_text(f"""
dataset: {data}
split: test
candidates: bm25.yaml
rankers:
  bm25: {{pipeline: bm25.yaml}}
  ce: {{pipeline: ce.yaml}}
  smoothed-ce: {{pipeline: ce.yaml, smoothed: true, samples: 10}}
output: out-attack
queries: 3
depth: 12
k: 5
target_rank: 6
attack: {{budget: 3, max_positions: 4, candidates: 3}}
max_words: 40
sets: {{table: table.json}}
""")
    return root


def test_certify_writes_json_markdown_and_plot(setup: Path) -> None:
    proc = rk("certify", "--config", str(setup / "certify.yaml"), "--quiet")
    out = setup / "out-certify"
    assert "CRQ@1" in proc.stdout and f"written: {out / 'certify.md'}, {out / 'certify.json'}" in proc.stdout
    report = json.loads((out / "certify.json").read_text())
    assert set(report["by_samples"]) == {"10", "20"} and report["queries"] == 3 and report["ks"] == [1, 2, 5]
    for n, e in report["by_samples"].items():
        assert set(e["crq"]) == {"1", "2", "5"} and all(0.0 <= v <= 1.0 for v in e["crq"].values())
        assert 0.0 <= e["clean"]["smoothed_ndcg@10"] <= 1.0 and e["pairs_scored"] <= e["pairs"]
        a = e["attack"]
        assert a["certified"] + a["uncertified"] == 3 and a["certified_successes"] == 0
    # N = 20 reuses N = 10's samples through the pair cache
    assert report["by_samples"]["20"]["pairs_scored"] < report["by_samples"]["20"]["pairs"]
    assert (out / "crq.png").stat().st_size > 1000 and "| N | margin |" in (out / "certify.md").read_text()
    assert report["card"]["config"]["samples"] == [10, 20]


def test_attack_writes_the_robustness_report(setup: Path) -> None:
    from rankkit.data import load_dataset
    from rankkit.robust.perturb import PerturbationTable, build_table

    data = setup / "scifact-mini"
    build_table((d.contents for d in load_dataset(data, "test").docs_iter())).save(setup / "table.json")
    proc = rk("attack", "--config", str(setup / "attack.yaml"), "--quiet")
    report = json.loads((setup / "out-attack" / "attack.json").read_text())
    assert set(report["rankers"]) == {"bm25", "ce", "smoothed-ce"}
    for e in report["rankers"].values():
        assert len(e["rows"]) == 3 and 0.0 <= e["success_rate"] <= 1.0
        assert all(r["substitutions"] <= 3 and r["rank_gain"] <= 5 for r in e["rows"])
    assert report["rankers"]["smoothed-ce"]["certified_successes"] == 0
    assert "| smoothed-ce |" in proc.stdout and (setup / "out-attack" / "attack.png").stat().st_size > 1000
    assert isinstance(PerturbationTable.load(setup / "table.json"), PerturbationTable)


def test_bad_inputs_fail_fast_with_one_line(setup: Path) -> None:
    proc = rk("certify", "--config", str(setup / "certify.yaml"), "--set", "samples=[5]", check=False)
    assert proc.returncode != 0 and "no query can ever be certified; use N >= 8" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = rk("certify", "--config", str(setup / "certify.yaml"), "--set", "ks=[1,12]", check=False)
    assert proc.returncode != 0 and "K = 12 is not below depth 12" in proc.stderr
    proc = rk("attack", "--config", str(setup / "attack.yaml"), "--set", "target_rank=13", check=False)
    assert proc.returncode != 0 and "target_rank" in proc.stderr
    proc = rk("attack", "--config", str(setup / "attack.yaml"), "--set", "sets.table=missing.json", check=False)
    assert proc.returncode != 0 and "sets.table" in proc.stderr and "does not exist" in proc.stderr
