"""Shared test fixtures: isolated caches, offline mode, and the shared data folder.

Every test session gets its own ``IR_DATASETS_HOME`` and ``RANKKIT_CACHE_DIR`` under a
temp dir, so tests never touch a user's caches and always exercise offline priming.
Tests on real data need ``RANKKIT_DATA_DIR`` (``make test`` and ``.ci/run`` set it to
``../shared/data``); without it they are skipped locally, but fail under CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rankkit_test_helpers import build_tiny_llm, slice_beir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("caches")
    os.environ["IR_DATASETS_HOME"] = str(root / "ir_datasets")
    os.environ["RANKKIT_CACHE_DIR"] = str(root / "rankkit")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder; skips locally when absent, fails in CI."""
    value = os.environ.get("RANKKIT_DATA_DIR")
    if value and Path(value).is_dir():
        return Path(value)
    if os.environ.get("CI"):
        pytest.fail("RANKKIT_DATA_DIR is not set to the shared data folder in CI")
    pytest.skip("RANKKIT_DATA_DIR not set (make test sets it to ../shared/data)")


@pytest.fixture(scope="session")
def scifact_dir(data_dir: Path) -> Path:
    """The local BEIR SciFact folder."""
    path = data_dir / "beir" / "scifact"
    assert path.is_dir(), f"{path} missing"
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with the MiniLM tokenizer: fast plumbing tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rankkit.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=37, max_position_embeddings=512))
    path = tmp_path_factory.mktemp("models") / "tiny-bert"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _overlap_run(queries: dict[str, str], docs: dict[str, str], depth: int) -> dict[str, dict[str, float]]:
    """A cheap lexical first stage: shared lower-case word count (plus a tiny docid tiebreak)."""
    bags = {d: set(t.lower().split()) for d, t in docs.items()}
    run = {}
    for qid, text in queries.items():
        words = set(text.lower().split())
        scored = sorted(((len(words & bag) + 1e-6 * i, d) for i, (d, bag) in enumerate(bags.items())), reverse=True)
        run[qid] = {d: float(s) for s, d in scored[:depth]}
    return run


@pytest.fixture(scope="session")
def train_folder(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BEIR folder from SciFact train (16 judged queries, their docs, 150 others) plus ``run.trec``.

    The run is a word-overlap first stage (no JVM), 50 deep, over the ``train`` split.
    """
    import json

    from rankkit import trec

    out = slice_beir(scifact_dir, tmp_path_factory.mktemp("train-mini") / "scifact-train-mini", "train", 16, 150)
    queries = {json.loads(l)["_id"]: json.loads(l)["text"] for l in (out / "queries.jsonl").read_text().splitlines()}
    texts = {}
    for line in (out / "corpus.jsonl").read_text().splitlines():
        rec = json.loads(line)
        texts[rec["_id"]] = f"{rec.get('title', '')} {rec['text']}"
    run = _overlap_run(queries, texts, 50)
    trec.write_run({q: sorted(d.items(), key=lambda x: -x[1]) for q, d in run.items()}, out / "run.trec", tag="overlap")
    return out


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random causal LM with a ChatML chat template (plumbing tests of setwise, GRPO, SFT)."""
    return build_tiny_llm(tmp_path_factory.mktemp("models") / "tiny-llm")
