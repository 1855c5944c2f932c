"""BM25 through Pyserini on real collections: Pyserini 2CR figures, Cranfield, Vaswani."""

from __future__ import annotations

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
    run = BM25(scifact, multifield=multifield, remove_query=True, show_progress=False)(scifact.queries)
    assert len(run) == 300 and all(len(run[q]) <= 1000 for q in run)
    values = evaluate(run, scifact.qrels, ["ndcg@10", "recall@100"])
    assert values["ndcg@10"] == pytest.approx(ndcg, abs=1e-3)
    assert values["recall@100"] == pytest.approx(recall, abs=2e-3)


def test_rankkit_equals_raw_pyserini_searcher(scifact) -> None:
    queries = scifact.queries[:20]
    stage = BM25(scifact, hits=100, show_progress=False)
    run = stage(queries)
    searcher = stage.index.searcher(0.9, 0.4)
    for q in queries[:5]:
        hits = searcher.search(q.text, k=100)
        assert {h.docid: h.score for h in hits} == dict(run[q.qid])


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
