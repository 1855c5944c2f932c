"""BM25 through Pyserini on real collections: Pyserini 2CR figures, Cranfield, Vaswani."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rankkit.data import load_dataset
from rankkit.errors import ConfigError, FormatError
from rankkit.evaluate import evaluate
from rankkit.index.lucene import LuceneIndex
from rankkit.retrieve.bm25 import BM25


@pytest.fixture(scope="module")
def scifact(data_dir: Path):
    return load_dataset("beir/scifact/test")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("multifield", "ndcg", "recall"),
    [(False, 0.6789, 0.9253), (True, 0.6647, 0.9076)],
    ids=["flat", "multifield"],
)
def test_scifact_reproduces_pyserini_2cr(scifact, multifield: bool, ndcg: float, recall: float) -> None:
    stage = BM25(scifact, multifield=multifield, show_progress=False)  # remove_query: auto is on for BEIR, as in 2CR
    assert stage.remove_query
    run = stage(scifact.queries)
    assert len(run) == 300 and all(len(run[q]) <= 1000 for q in run)
    values = evaluate(run, scifact.qrels, ["ndcg@10", "recall@100"])
    assert values["ndcg@10"] == pytest.approx(ndcg, abs=1e-3)
    assert values["recall@100"] == pytest.approx(recall, abs=2e-3)


@pytest.mark.parametrize("multifield", [False, True], ids=["flat", "multifield"])
def test_rankkit_equals_raw_pyserini_searcher(scifact, monkeypatch: pytest.MonkeyPatch, multifield: bool) -> None:
    """rankkit calls Anserini's SimpleSearcher itself (no pyserini.search import): same hits as Pyserini's."""
    monkeypatch.setenv("OPENAI_API_KEY", "unused")  # pyserini.search imports an OpenAI client that wants a key
    from pyserini.search.lucene import LuceneSearcher

    queries = scifact.queries[:20]
    stage = BM25(scifact, hits=100, multifield=multifield, show_progress=False)
    run = stage(queries)
    searcher = LuceneSearcher(str(stage.index.path))
    searcher.set_bm25(0.9, 0.4)
    fields = {"contents": 1.0, "title": 1.0} if multifield else {}
    batch = searcher.batch_search([q.text for q in queries], [q.qid for q in queries], k=100, threads=2,
                                  fields=fields)
    for q in queries:
        expected = {h.docid: h.score for h in batch[q.qid] if h.docid != q.qid}  # remove_query: auto, on for BEIR
        assert expected == dict(run[q.qid])
    ours = stage.index.searcher(0.9, 0.4)
    for q in queries[:5]:
        assert [(h.docid, h.score) for h in ours.search(q.text, k=100, fields=fields)] == \
            [(h.docid, h.score) for h in searcher.search(q.text, k=100, fields=fields)]
    ours.close()


def test_remove_query_drops_self_hits(tmp_path: Path) -> None:
    from rankkit.data.dataset import Dataset
    from rankkit.types import Document, Query, Qrels

    docs = [Document("q1", "lucene bm25 ranking"), Document("d2", "bm25 ranking function"),
            Document("d3", "unrelated text")]
    ds = Dataset("self", lambda: iter(docs), [Query("q1", "bm25 ranking")], Qrels({"q1": {"d2": 1}}))
    kept = BM25(ds, show_progress=False)(ds.queries)
    dropped = BM25(ds, remove_query=True, show_progress=False)(ds.queries)
    assert "q1" in kept["q1"] and "q1" not in dropped["q1"]
    assert set(dropped["q1"]) == set(kept["q1"]) - {"q1"}


def _colliding_beir_folder(root: Path, name: str) -> Path:
    """A BEIR-format folder whose query ids and document ids are both 1..3: query 1's own-number doc is relevant."""
    import json

    folder = root / name
    (folder / "qrels").mkdir(parents=True)
    docs = {"1": "bm25 ranking of documents", "2": "bm25 ranking function for search", "3": "unrelated gardening"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                                 for d, t in docs.items()))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "bm25 ranking"}) + "\n"
                                          + json.dumps({"_id": "2", "text": "search function"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t1\t1\n2\t2\t1\n")
    return folder


def test_remove_query_auto_keeps_colliding_docs_of_a_non_beir_folder(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    ds = load_dataset(_colliding_beir_folder(tmp_path, "toy"))
    assert ds.remove_query is False
    stage = BM25(ds, show_progress=False)
    run = stage(ds.queries)
    assert "1" in run["1"] and "2" in run["2"]  # each query keeps the document sharing its number (relevant here)
    assert stage.stats == {}
    with caplog.at_level(logging.INFO, logger="rankkit.retrieve.bm25"):
        asked = BM25(ds, remove_query=True, show_progress=False)
        dropped = asked(ds.queries)
    assert "1" not in dropped["1"] and "2" not in dropped["2"]
    assert set(dropped["1"]) == set(run["1"]) - {"1"}
    assert asked.stats == {"removed_query_hits": 2}
    assert "remove_query dropped 2 hit(s)" in caplog.text


def test_remove_query_auto_is_on_for_beir_datasets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from rankkit.data.beir import follows_beir_convention

    assert follows_beir_convention("beir/scifact/test") and follows_beir_convention("arguana")
    assert follows_beir_convention("beir/cqadupstack/android/test")
    assert not follows_beir_convention("cranfield") and not follows_beir_convention("toy")
    ds = load_dataset(_colliding_beir_folder(tmp_path, "arguana"))
    assert ds.remove_query is True and ds.subset(1).remove_query is True
    with caplog.at_level(logging.INFO, logger="rankkit.retrieve.bm25"):
        stage = BM25(ds, show_progress=False)
        run = stage(ds.queries)
    assert "1" not in run["1"] and stage.stats == {"removed_query_hits": 2}
    assert "remove_query on (auto)" in caplog.text
    kept = BM25(ds, remove_query=False, show_progress=False)(ds.queries)
    assert "1" in kept["1"]


@pytest.mark.parametrize(("dataset_id", "docs", "queries"), [("cranfield", 1400, 225), ("vaswani", 11429, 93)])
def test_classic_collections_bm25(data_dir: Path, dataset_id: str, docs: int, queries: int) -> None:
    ds = load_dataset(dataset_id)
    assert ds.docs_count() == docs and len(ds.queries) == queries
    stage = BM25(ds, hits=100, show_progress=False)
    run = stage(ds.queries)
    empty = sum(1 for d in ds.docs_iter() if not (d.title.strip() or d.text.strip()))
    assert stage.index.num_docs() == docs - empty  # Lucene skips empty docs (Cranfield has 2)
    assert stage.index.manifest["empty_docs"] == empty
    assert len(run) == queries
    ndcg = evaluate(run, ds.qrels, ["ndcg@10"])["ndcg@10"]
    assert 0.2 < ndcg < 0.8  # BM25 is far better than random on both; exact values are in eval/results


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'k2'.*did you mean 'k1'"):
        BM25(index=str(tmp_path), k2=1.0)
    with pytest.raises(ConfigError, match="needs a dataset"):
        BM25()
    with pytest.raises(ConfigError, match="hits must be >= 1"):
        BM25(index=str(tmp_path), hits=0)


def test_missing_index_path_is_a_clear_error(tmp_path: Path) -> None:
    from rankkit.errors import IndexMissingError

    stage = BM25(index=str(tmp_path / "missing"), show_progress=False)
    with pytest.raises(IndexMissingError, match="missing"):
        stage([("q1", "text")])


def test_empty_query_text_is_rejected(scifact) -> None:
    with pytest.raises(FormatError, match="query 'q1' has empty text"):
        BM25(scifact, show_progress=False)([("q1", "   ")])


def test_prebuilt_anserini_index_loads(scifact, tmp_path: Path) -> None:
    index = LuceneIndex.build(scifact, show_progress=False)
    stage = BM25(index=str(index.path), hits=10, show_progress=False)
    run = stage(scifact.queries[:3])
    assert all(len(run[q]) == 10 for q in run)


@pytest.mark.parametrize("remove_query", [False, True])
def test_cutoff_pushdown_equals_trimming_the_full_run(scifact, remove_query: bool) -> None:
    queries = scifact.queries[:30]
    stage = BM25(scifact, remove_query=remove_query, show_progress=False)
    pipe = stage % 10
    (pushed,) = pipe.stages  # exact: no Cutoff stage left
    assert isinstance(pushed, BM25) and (pushed.config.hits, pushed.config.search_depth) == (10, 1000)
    assert pipe(queries) == stage(queries).top_k(10)


def test_identical_documents_rank_as_in_the_full_run() -> None:
    """25 identical documents, indexed in reverse docid order: Anserini orders ties by docid either way."""
    from rankkit.data.dataset import Dataset
    from rankkit.types import Document, Qrels, Query

    docs = [Document(f"d{i:02d}", "lucene bm25 ranking") for i in reversed(range(25))]
    docs += [Document("x1", "bm25 ranking function with many more words here"), Document("x2", "unrelated text")]
    ds = Dataset("ties", lambda: iter(docs), [Query("q1", "bm25 ranking")], Qrels({"q1": {"d00": 1}}))
    full = BM25(ds, show_progress=False)(ds.queries)
    assert list(full.top_k(3)["q1"]) == ["d00", "d01", "d02"]
    assert (BM25(ds, show_progress=False) % 3)(ds.queries) == full.top_k(3)
    assert BM25(ds, hits=3, show_progress=False)(ds.queries) == full.top_k(3)


class _Hit:
    def __init__(self, docid: str, score: float) -> None:
        self.docid, self.score = docid, score


class _FakeSearcher:
    """Anserini's contract: the k-hit list is the first k of one fixed ranking (score, then docid ascending)."""

    def __init__(self, ranking: list[tuple[str, float]]) -> None:
        self.ranking, self.depths = ranking, []  # type: list[tuple[str, float]], list[int]

    def batch_search(self, texts: list[str], qids: list[str], k: int, threads: int,
                     fields: dict[str, float]) -> dict[str, list[_Hit]]:
        self.depths.append(k)
        return {qid: [_Hit(d, s) for d, s in self.ranking[:k]] for qid in qids}


@pytest.mark.parametrize("remove_query", [False, True])
def test_ties_across_the_cutoff_search_deeper(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                              remove_query: bool) -> None:
    """Scores tie from rank 3 to 40: the k-hit top 3 keeps c, d (docid ascending); the full run keeps the last ids."""
    import logging

    tied = [(f"t{i:02d}", 3.0) for i in range(38)]
    ranking = [("a", 5.0), ("q1", 4.5), ("b", 4.0), *tied, *[(f"u{i:03d}", 2.0 - i / 1000) for i in range(200)]]
    if not remove_query:
        ranking.remove(("q1", 4.5))
    full = BM25(index=str(tmp_path), remove_query=remove_query, show_progress=False)
    full._searcher = _FakeSearcher(ranking)
    expected = full([("q1", "x")]).top_k(4)
    assert list(expected["q1"]) == ["a", "b", "t37", "t36"]
    pushed = (full % 4).stages[0]
    pushed._searcher = searcher = _FakeSearcher(ranking)
    with caplog.at_level(logging.DEBUG, logger="rankkit.retrieve.bm25"):
        assert pushed([("q1", "x")]) == expected
    assert searcher.depths == [18, 72] and "tied at rank 4" in caplog.text  # 18 hits end inside the tie
    plain = BM25(index=str(tmp_path), hits=4, remove_query=remove_query, show_progress=False)
    plain._searcher = _FakeSearcher(ranking)
    assert plain([("q1", "x")]) != expected  # why the pushed-down stage cannot simply search 4 hits


def test_search_depth_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"search_depth must be >= hits \(10\)"):
        BM25(index=str(tmp_path), hits=10, search_depth=5)
    plain = BM25(index=str(tmp_path), hits=10)
    assert "depth" not in plain.cache_spec()  # keys of caches written before depth existed stay valid
    assert BM25(index=str(tmp_path), hits=10, search_depth=10).cache_spec() == plain.cache_spec()
    assert BM25(index=str(tmp_path), hits=10, search_depth=100).cache_spec()["depth"] == 100
    assert plain.with_hits(20) is plain  # a wider cutoff changes nothing
    assert (plain.with_hits(5).config.hits, plain.with_hits(5).config.search_depth) == (5, 10)
    assert (plain.with_hits(5).with_hits(2).config.search_depth) == 10
