"""DenseIndex: exact flat search, HNSW recall, vector reconstruction, atomic save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankkit.errors import ConfigError, IndexMissingError
from rankkit.index.faiss import MANIFEST, DenseIndex


def _data(n: int = 2000, d: int = 32, nq: int = 25, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, d)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    queries = rng.standard_normal((nq, d)).astype(np.float32)
    return emb, [f"doc{i}" for i in range(n)], queries


def _brute_force(emb: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ emb.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, axis=1), top


def test_flat_search_equals_brute_force() -> None:
    emb, docids, queries = _data()
    index = DenseIndex.build(emb, docids, kind="flat", gpu=False)
    scores, found = index.search(queries, 50)
    ref_scores, ref_rows = _brute_force(emb, queries, 50)
    assert scores.shape == (len(queries), 50)
    for i in range(len(queries)):
        assert found[i] == [docids[j] for j in ref_rows[i]]
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-5)


def test_search_k_larger_than_corpus_and_single_vector() -> None:
    emb, docids, queries = _data(n=30)
    index = DenseIndex.build(emb, docids, gpu=False)
    scores, found = index.search(queries[0], 1000)
    assert scores.shape == (1, 30) and len(found[0]) == 30
    assert sorted(found[0]) == sorted(docids)


def test_hnsw_recall_against_flat() -> None:
    emb, docids, queries = _data(n=3000, d=32, nq=50, seed=1)
    flat = DenseIndex.build(emb, docids, kind="flat", gpu=False)
    hnsw = DenseIndex.build(emb, docids, kind="hnsw", hnsw_m=32, ef_construction=80, ef_search=128, gpu=False)
    k = 10
    _, exact = flat.search(queries, k)
    _, approx = hnsw.search(queries, k)
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)])
    assert recall >= 0.95, recall
    assert hnsw.index.metric_type == flat.index.metric_type  # inner product for both


def test_vectors_reconstruct_exactly() -> None:
    emb, docids, _ = _data(n=100)
    index = DenseIndex.build(emb, docids, kind="hnsw", gpu=False)
    np.testing.assert_array_equal(index.vectors(["doc7", "doc3", "doc99"]), emb[[7, 3, 99]])
    with pytest.raises(KeyError, match="nope"):
        index.vectors(["doc1", "nope"])


def test_save_load_round_trip(tmp_path) -> None:
    emb, docids, queries = _data(n=500)
    for kind in ("flat", "hnsw"):
        index = DenseIndex.build(emb, docids, kind=kind, model="some/model", settings={"max_length": 7}, gpu=False)
        path = index.save(tmp_path / kind)
        manifest = json.loads((path / MANIFEST).read_text())
        assert manifest["complete"] is True
        assert (manifest["kind"], manifest["dim"], manifest["count"]) == (kind, 32, 500)
        loaded = DenseIndex.load(path, gpu=False)
        assert loaded.docids == docids and loaded.model == "some/model"
        assert loaded.settings["max_length"] == 7
        s1, d1 = index.search(queries, 20)
        s2, d2 = loaded.search(queries, 20)
        assert d1 == d2
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(loaded.vectors(docids[:5]), emb[:5])
    # saving over an existing index replaces it and leaves no temp folders behind
    DenseIndex.build(emb[:10], docids[:10], gpu=False).save(tmp_path / "flat")
    assert len(DenseIndex.load(tmp_path / "flat")) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat", "hnsw"]


def test_load_missing_or_incomplete_raises(tmp_path) -> None:
    with pytest.raises(IndexMissingError, match=str(tmp_path / "absent")):
        DenseIndex.load(tmp_path / "absent")
    emb, docids, _ = _data(n=20)
    path = DenseIndex.build(emb, docids, gpu=False).save(tmp_path / "idx")
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(IndexMissingError, match="incomplete"):
        DenseIndex.load(path)
    (path / MANIFEST).unlink()  # as if the process died before the marker was written
    with pytest.raises(IndexMissingError, match=str(path)):
        DenseIndex.load(path)


def test_build_validates_input() -> None:
    emb, docids, _ = _data(n=10)
    with pytest.raises(ValueError, match="do not match"):
        DenseIndex.build(emb, docids[:5])
    with pytest.raises(ValueError, match="unique"):
        DenseIndex.build(emb, ["same"] * 10)
    with pytest.raises(ConfigError, match="kind"):
        DenseIndex.build(emb, docids, kind="ivf")


def test_gpu_option_without_gpu() -> None:
    import faiss

    emb, docids, _ = _data(n=10)
    if faiss.get_num_gpus() > 0:
        index = DenseIndex.build(emb, docids, gpu=True)
        assert index._search_index is not index.index
    else:
        index = DenseIndex.build(emb, docids, gpu="auto")
        assert index._search_index is index.index  # stays on CPU
        with pytest.raises(ConfigError, match="no GPU"):
            DenseIndex.build(emb, docids, gpu=True)
