"""DenseIndex: exact flat search, HNSW and IVF (flat, PQ) against brute force, incremental building,
recall reporting, parameter errors, vector reconstruction, atomic save/load, GPU selection (no GPU needed).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import faiss

from rankkit.errors import ConfigError, IndexMissingError, IndexNotTrainedError
from rankkit.index.faiss import KINDS, MANIFEST, DenseIndex, auto_nlist, auto_pq_m


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


# --- IVF kinds, incremental building, recall, errors, GPU selection -----------------------------
# Small data (600 x 16): every index here builds in milliseconds.

IVF_PARAMS = {"flat": {}, "hnsw": {"hnsw_m": 16, "ef_construction": 80, "ef_search": 64},
              "ivf_flat": {"nlist": 8, "nprobe": 3}, "ivf_pq": {"nlist": 8, "nprobe": 3, "pq_m": 8, "pq_nbits": 4}}


def _small(n: int = 600, d: int = 16, nq: int = 20) -> tuple[np.ndarray, list[str], np.ndarray]:
    return _data(n=n, d=d, nq=nq, seed=3)


def test_ivf_flat_with_every_list_probed_equals_flat() -> None:
    emb, docids, queries = _small()
    flat = DenseIndex.build(emb, docids, gpu=False)
    ivf = DenseIndex.build(emb, docids, kind="ivf_flat", nlist=8, nprobe=8, gpu=False)
    s1, d1 = flat.search(queries, 50)
    s2, d2 = ivf.search(queries, 50)
    assert d1 == d2
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    assert ivf.index.metric_type == faiss.METRIC_INNER_PRODUCT and ivf.nlist == 8
    ivf.nprobe = 1  # fewer lists: fewer documents found, each with its exact score
    scores, found = ivf.search(queries, 10)
    for q, row, ids in zip(queries, scores, found):
        np.testing.assert_allclose(row[: len(ids)], ivf.vectors(ids) @ q, atol=1e-5)
    assert np.mean([len(set(a) & set(b[:10])) / 10 for a, b in zip(found, d1)]) < 1.0


def test_ivf_pq_search_is_brute_force_over_its_quantised_vectors() -> None:
    emb, docids, queries = _small()
    pq = DenseIndex.build(emb, docids, kind="ivf_pq", nlist=8, nprobe=8, pq_m=8, pq_nbits=4, gpu=False)
    assert (pq.index.pq.M, pq.index.pq.nbits) == (8, 4)
    pq.index.make_direct_map()
    decoded = pq.index.reconstruct_n(0, len(emb))  # coarse centroid + decoded residual of each vector
    ref_scores, ref_rows = _brute_force(decoded, queries, 10)
    scores, found = pq.search(queries, 10)
    assert found == [[docids[j] for j in row] for row in ref_rows]
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4)
    assert 0.3 < pq.measure_recall(queries, k=10) < 1.0  # lossy codes: approximate, not exact


def test_incremental_build_equals_one_call_build() -> None:
    emb, docids, queries = _small()
    for kind in KINDS:
        one = DenseIndex.build(emb, docids, kind=kind, **IVF_PARAMS[kind], gpu=False)
        inc = DenseIndex.create(emb.shape[1], kind, **IVF_PARAMS[kind], gpu=False)
        inc.train(emb)  # a larger sample than train_size: the same seeded subsample build() trains on
        for start in range(0, len(emb), 250):
            inc.add(docids[start:start + 250], emb[start:start + 250])
        assert len(inc) == len(emb) and inc.docids == docids
        np.testing.assert_array_equal(inc.embeddings, emb)
        np.testing.assert_array_equal(inc.vectors(["doc599", "doc0"]), emb[[599, 0]])
        s1, d1 = one.search(queries, 20)
        s2, d2 = inc.search(queries, 20)
        if kind == "hnsw":  # the graph depends on insertion batches: compare as sets
            assert np.mean([len(set(a) & set(b)) / 20 for a, b in zip(d1, d2)]) > 0.9
        else:
            assert d1 == d2, kind
            np.testing.assert_array_equal(s1, s2)


def test_recall_is_measured_logged_and_kept(caplog: pytest.LogCaptureFixture) -> None:
    emb, docids, queries = _small()
    with caplog.at_level("INFO", logger="rankkit.index.faiss"):
        ivf = DenseIndex.build(emb, docids, kind="ivf_flat", nlist=8, nprobe=2, gpu=False)
    info = ivf.settings["recall_at_k"]
    assert (info["k"], info["queries"], info["source"], info["nprobe"]) == (100, 256, "sample of stored vectors", 2)
    assert 0.2 < info["recall"] < 1.0
    assert any(r.getMessage().startswith("ivf_flat recall@100 vs flat: ") and "on 256 sample queries" in
               r.getMessage() for r in caplog.records)
    flat = DenseIndex.build(emb, docids, gpu=False)
    assert "recall_at_k" not in flat.settings  # exact: nothing to report at build
    assert flat.measure_recall() == 1.0 and flat.measure_recall(queries, k=7) == 1.0
    ivf.nprobe = ivf.nlist
    assert ivf.measure_recall(queries, k=10, sample=5) == 1.0  # every list probed: exact
    assert ivf.settings["recall_at_k"]["queries"] == 5 and ivf.settings["recall_at_k"]["nprobe"] == 8
    skipped = DenseIndex.build(emb, docids, kind="hnsw", recall_sample=0, gpu=False)
    assert "recall_at_k" not in skipped.settings
    assert DenseIndex.build(emb, docids, kind="hnsw", gpu=False).settings["recall_at_k"]["recall"] > 0.9


def test_index_parameter_errors() -> None:
    emb, docids, queries = _small()
    with pytest.raises(ConfigError, match=r"nprobe=9 is larger than nlist=8"):
        DenseIndex.build(emb, docids, kind="ivf_flat", nlist=8, nprobe=9, gpu=False)
    with pytest.raises(ConfigError, match=r"nprobe=99 is larger than nlist=\d+ \(chosen"):
        DenseIndex.build(emb, docids, kind="ivf_flat", nprobe=99, gpu=False)
    with pytest.raises(ConfigError, match=r"pq_m=5 does not divide the vector dimension 16"):
        DenseIndex.create(16, "ivf_pq", nlist=4, pq_m=5)
    with pytest.raises(ConfigError, match="unknown dense index kind 'ivf'"):
        DenseIndex.create(16, "ivf")
    with pytest.raises(ConfigError, match="nlist is required"):
        DenseIndex.create(16, "ivf_flat")
    with pytest.raises(ConfigError, match="pq_nbits must be an integer from 1 to 16"):
        DenseIndex.create(16, "ivf_pq", nlist=4, pq_nbits=32)
    with pytest.raises(ConfigError, match="train_size=3 is smaller than nlist=4"):
        DenseIndex.create(16, "ivf_flat", nlist=4, train_size=3)
    with pytest.raises(ConfigError, match=f"train_size=5 is smaller than nlist={auto_nlist(len(emb))}"):
        DenseIndex.build(emb, docids, kind="ivf_flat", train_size=5, gpu=False)  # against the chosen nlist
    for kind in ("ivf_flat", "ivf_pq"):
        index = DenseIndex.create(16, kind, nlist=4, pq_m=4, gpu=False)
        with pytest.raises(IndexNotTrainedError, match=f"cannot search the {kind} index before it is trained: "
                                                       r"call train\(sample_vectors\) first"):
            index.search(queries, 5)
        with pytest.raises(IndexNotTrainedError, match="cannot add vectors to"):
            index.add(docids[:3], emb[:3])
        with pytest.raises(ConfigError, match="at least"):
            index.train(emb[:3])  # fewer vectors than lists (or PQ centroids)
    index = DenseIndex.create(16, "ivf_flat", nlist=4, gpu=False).train(emb)
    with pytest.raises(ConfigError, match="already trained"):
        index.train(emb)
    with pytest.raises(ConfigError, match="nprobe=5 is larger than nlist=4"):
        index.nprobe = 5
    index.add(docids[:10], emb[:10])
    with pytest.raises(ConfigError, match="unique.*'doc3'"):
        index.add(["new", "doc3"], emb[:2])  # across adds
    with pytest.raises(ConfigError, match="unique"):
        index.add(["x", "x"], emb[:2])  # within one add
    with pytest.raises(ConfigError, match="do not match"):
        index.add(["a"], emb[:2])
    with pytest.raises(ConfigError, match="dimension 16"):
        index.add(["a"], np.zeros((1, 8), dtype=np.float32))
    assert len(index) == 10  # nothing was added by the failed calls
    with pytest.raises(ConfigError, match="nprobe applies to IVF"):
        DenseIndex.build(emb, docids, gpu=False).nprobe = 2


def test_defaults_for_nlist_nprobe_and_pq_m() -> None:
    assert auto_nlist(1_000_000) == 4000 and auto_nlist(5183) == 132 and auto_nlist(10) == 1
    assert auto_pq_m(384) == 48 and auto_pq_m(768) == 96 and auto_pq_m(7) == 1
    emb, docids, _ = _small(n=2000)
    ivf = DenseIndex.build(emb, docids, kind="ivf_pq", pq_nbits=4, gpu=False)
    assert (ivf.nlist, ivf.nprobe, ivf.index.pq.M) == (auto_nlist(2000), 32, 2)
    assert ivf.settings["trained_on"] == 2000 and ivf.settings["nlist"] == ivf.nlist


def test_save_load_every_kind(tmp_path) -> None:
    emb, docids, queries = _small()
    for kind in KINDS:
        index = DenseIndex.build(emb, docids, kind=kind, **IVF_PARAMS[kind], gpu=False)
        path = index.save(tmp_path / kind)
        manifest = json.loads((path / MANIFEST).read_text())
        assert manifest["format"] == 1 and manifest["kind"] == kind
        loaded = DenseIndex.load(path, gpu=False)
        assert (loaded.kind, loaded.nprobe, loaded.ef_search) == (kind, index.nprobe, index.ef_search)
        assert loaded.settings == index.settings
        s1, d1 = index.search(queries, 15)
        s2, d2 = loaded.search(queries, 15)
        assert d1 == d2, kind
        np.testing.assert_array_equal(s1, s2)
        if kind.startswith("ivf"):
            assert manifest["nprobe"] == 3 and loaded.settings["recall_at_k"]["nprobe"] == 3
            wider = DenseIndex.load(path, gpu=False, nprobe=8)  # search-time: no rebuild
            assert wider.nprobe == 8 and wider.index.nprobe == 8
            with pytest.raises(ConfigError, match="nprobe=9 is larger than nlist=8"):
                DenseIndex.load(path, gpu=False, nprobe=9)
        if kind == "hnsw":
            assert DenseIndex.load(path, gpu=False, ef_search=300).ef_search == 300
    # a manifest written before the IVF kinds (format 1, no nprobe) still loads
    manifest = json.loads((tmp_path / "ivf_flat" / MANIFEST).read_text())
    del manifest["nprobe"]
    (tmp_path / "ivf_flat" / MANIFEST).write_text(json.dumps(manifest))
    assert DenseIndex.load(tmp_path / "ivf_flat", gpu=False).nprobe == 3  # FAISS keeps nprobe in index.faiss
    (tmp_path / "ivf_flat" / MANIFEST).write_text(json.dumps({**manifest, "format": 2}))
    with pytest.raises(IndexMissingError, match="newer rankkit"):
        DenseIndex.load(tmp_path / "ivf_flat", gpu=False)


def _no_gpu_entry(*args: object, **kwargs: object) -> None:
    raise AssertionError("a FAISS GPU function was called")


def test_no_gpu_function_is_entered_without_a_gpu(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    for name in ("index_cpu_to_all_gpus", "index_cpu_to_gpus_list", "index_cpu_to_gpu"):
        monkeypatch.setattr(faiss, name, _no_gpu_entry, raising=False)
    emb, docids, queries = _small()
    with caplog.at_level("INFO", logger="rankkit.index.faiss"):
        for kind in KINDS:
            index = DenseIndex.build(emb, docids, kind=kind, **IVF_PARAMS[kind], gpu="auto")
            index.search(queries, 5)
            assert index._search_index is index.index
            assert f"searching the {kind} index on CPU (FAISS sees no GPU)" in caplog.text
            with pytest.raises(ConfigError, match="gpu=True but FAISS sees no GPU"):
                DenseIndex.create(16, kind, nlist=4, gpu=True)


def test_gpu_path_is_entered_for_flat_and_ivf_only(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    moved: list[str] = []

    def fake_to_gpus(index, co=None, ngpu=-1):  # type: ignore[no-untyped-def]
        moved.append(type(index).__name__)
        return index  # "the GPU copy": the CPU index itself, so searching still works

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", fake_to_gpus)
    emb, docids, queries = _small()
    expected = {"flat": "IndexFlatIP", "hnsw": None, "ivf_flat": "IndexIVFFlat", "ivf_pq": "IndexIVFPQ"}
    for kind in KINDS:
        moved.clear()
        caplog.clear()
        with caplog.at_level("INFO", logger="rankkit.index.faiss"):
            index = DenseIndex.build(emb, docids, kind=kind, **IVF_PARAMS[kind], gpu="auto")
            assert len(index.search(queries, 5)[1][0]) == 5
        if expected[kind] is None:
            assert moved == [] and "searching the hnsw index on CPU (FAISS has no GPU hnsw index)" in caplog.text
            with pytest.raises(ConfigError, match="no GPU version of a 'hnsw' index"):
                DenseIndex.build(emb, docids, kind=kind, gpu=True)
        else:
            assert moved and set(moved) == {expected[kind]}, (kind, moved)
            assert f"searching the {kind} index on 1 GPU(s)" in caplog.text
            assert DenseIndex.build(emb, docids, kind=kind, **IVF_PARAMS[kind], gpu=True).nprobe == index.nprobe


def test_ivf_pq_refused_by_the_gpu_falls_back_under_auto(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    def refusing(index, co=None, ngpu=-1):  # type: ignore[no-untyped-def]
        raise RuntimeError("Error in GpuIndexIVFPQ: Number of sub-quantizers not supported")

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", refusing)
    emb, docids, queries = _small()
    with caplog.at_level("INFO", logger="rankkit.index.faiss"):
        index = DenseIndex.build(emb, docids, kind="ivf_pq", **IVF_PARAMS["ivf_pq"], gpu="auto")
    assert index._search_index is index.index and len(index.search(queries, 5)[1][0]) == 5
    assert "falling back to the CPU" in caplog.text and "searching the ivf_pq index on CPU" in caplog.text
    with pytest.raises(ConfigError, match="gpu=True but FAISS cannot put this ivf_pq index on the GPU"):
        DenseIndex.create(16, "ivf_pq", nlist=8, pq_m=8, pq_nbits=4, gpu=True).train(emb)  # before any add
