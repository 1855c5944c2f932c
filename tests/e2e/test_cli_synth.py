"""End-to-end: `rankkit synth duqgen` with the real offline models on a SciFact slice, then training on its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankkit_test_helpers import run_cli as rk

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SciFact's first 60 documents as a BEIR folder with no queries (DUQGen reads documents only)."""
    out = tmp_path_factory.mktemp("corpus") / "scifact-60"
    out.mkdir()
    with open(scifact_dir / "corpus.jsonl") as fh:
        (out / "corpus.jsonl").write_text("".join(line for _, line in zip(range(60), fh)))
    return out


def test_duqgen_writes_a_folder_that_training_reads(corpus: Path, tiny_bert: Path, tmp_path: Path) -> None:
    from rankkit.data import load_dataset
    from rankkit.types import Run

    cfg = tmp_path / "duqgen.yaml"
    cfg.write_text(f"""
corpus: {corpus}
output: {tmp_path / 'synth'}
clusters: {{k: 2, iterations: 10, elbow: [1, 2, 3, 4]}}
sample: {{n: 6}}
generate: {{fewshot: {ROOT / 'pipelines/fewshot/scifact.jsonl'}, doc_words: 60, max_new_tokens: 24, batch_size: 6}}
negatives: {{depth: 20}}
""")
    proc = rk("synth", "duqgen", "--config", str(cfg), "--quiet")
    folder = tmp_path / "synth"
    assert f"folder: {folder}" in proc.stdout and "generated tokens/s" in proc.stdout
    card = json.loads((folder / "duqgen_card.json").read_text())
    assert card["sampled_docs"] == 6 and sum(card["generation"]["reasons"].values()) == 6
    assert card["elbow"]["k"] == [1, 2, 3, 4] and len(card["cluster_sizes"]) == 2
    assert (folder / "corpus.jsonl").resolve() == (corpus / "corpus.jsonl").resolve()  # referenced, not copied
    ds = load_dataset(folder, "train")
    assert len(ds.queries) == card["queries"] >= 1 and ds.qrels.num_judgements == len(ds.queries)
    negatives = Run.from_trec(folder / "negatives.trec")
    for q in ds.queries:
        positive = ds.qrels.relevant(q.qid)
        assert len(positive) == 1 and q.qid == f"duqgen-{positive[0]}"
        assert len(negatives[q.qid]) == 4 and positive[0] not in negatives[q.qid]

    train = tmp_path / "train.yaml"
    train.write_text(f"""
model: {{name: {tiny_bert}, max_length: 64}}
output: {tmp_path / 'ce'}
batch_size: 1
max_steps: 2
epochs: 1
eval_every: 0
lora: {{rank: 4, alpha: 8}}
data:
  dataset: {folder}
  split: train
  first_stage: {folder / 'negatives.trec'}
  dev: null
  groups: {{group_size: 5, negatives_depth: 4}}
""")
    rk("train", "reranker", "--config", str(train), "--quiet")
    assert (tmp_path / "ce" / "train_card.json").is_file()


def test_duqgen_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sample: {n: 3}\nclusters: {k: 10}\n")
    proc = rk("synth", "duqgen", "--config", str(cfg), check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "clusters.k (10) must be <= sample.n (3)" in proc.stderr
