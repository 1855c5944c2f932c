"""BM25TextScorer: Lucene's BM25 of free text under an index's statistics equals the searcher's scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rankkit_test_helpers import slice_beir

from rankkit.data import load_dataset
from rankkit.errors import ConfigError
from rankkit.index.lucene import BM25TextScorer, LuceneIndex
from rankkit.retrieve.bm25 import BM25


@pytest.fixture(scope="module")
def scifact_slice(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """SciFact test: its first 5 judged queries, their judged documents and 1,000 other documents."""
    folder = slice_beir(scifact_dir, tmp_path_factory.mktemp("scorer") / "scifact-slice", "test", 5, 1000)
    return load_dataset(str(folder))


@pytest.fixture(scope="module")
def stage(scifact_slice) -> BM25:
    return BM25(scifact_slice, hits=20, threads=1, show_progress=False)


@pytest.fixture(scope="module")
def texts(scifact_slice) -> dict[str, str]:
    """Each document's ``contents`` as Anserini's BeirFlatCollection indexes it: title, newline, text."""
    return {d.docid: f"{d.title}\n{d.text}" for d in scifact_slice.docs_iter()}


def _anserini_rounding(scores: np.ndarray) -> list[float]:
    """Anserini's ScoreTiesAdjusterReranker on scores in hit order: round to 1e-4 (in double), lower ties by 1e-6."""
    out: list[float] = []
    dup = 0
    for i, s in enumerate(scores):
        r = float(np.float32(np.floor(float(np.float32(s)) * 1e4 + 0.5) / 1e4))
        if i == 0 or out[-1] - r > 1e-4:
            dup = 0
        else:
            dup += 1
            r = float(np.float32(r - 1e-6 * dup))
        out.append(r)
    return out


def test_unmodified_documents_score_as_in_the_run(stage: BM25, scifact_slice, texts: dict[str, str]) -> None:
    queries = scifact_slice.queries[:5]
    assert len(queries) == 5
    run = stage(queries)
    scorer = stage.text_scorer()
    assert stage.text_scorer() is scorer  # made once per stage
    worst = 0.0
    for q in queries:
        hits = run[q.qid]
        assert len(hits) == 20
        ours = scorer.score(q.text, [texts[d] for d in hits])
        assert ours.dtype == np.float64 and ours.shape == (20,)
        diffs = np.abs(ours - np.array(list(hits.values())))
        worst = max(worst, float(diffs.max()))
    assert worst <= 1e-4, f"max |text score - run score| = {worst}"

    # Bit for bit: Anserini's rounding of our scores gives the searcher's hit scores, in its hit order.
    searcher = stage.index.searcher(stage.config.k1, stage.config.b)
    try:
        for q in queries:
            hits = searcher.search(q.text, k=20)
            ours = scorer.score(q.text, [texts[h.docid] for h in hits])
            assert _anserini_rounding(ours) == [float(np.float32(h.score)) for h in hits], q.qid
    finally:
        searcher.close()


def test_term_copies_empty_texts_and_unknown_terms(stage: BM25, scifact_slice, texts: dict[str, str]) -> None:
    scorer = stage.text_scorer()
    q = scifact_slice.queries[0]
    terms, _ = scorer.query_weights(q.text)
    word = next(w for w in q.text.split() if scorer.analyze(w) and scorer.analyze(w)[0] in terms)
    top = next(iter(stage([q])[q.qid]))
    base, extra = scorer.score(q.text, [texts[top], f"{texts[top]} {word}"])
    assert extra > base > 0
    assert scorer.score(q.text, ["", "the of and"]).tolist() == [0.0, 0.0]  # nothing, or only stopwords
    assert scorer.score(q.text, []).shape == (0,)
    # A term the index lacks (df = 0) scores nothing; a repeated query term counts twice (clause boost 2).
    assert scorer.doc_freq("zzqxvkj") == 0
    assert scorer.score("zzqxvkj", ["zzqxvkj zzqxvkj"]).tolist() == [0.0]
    once, twice = scorer.score(word, [texts[top]])[0], scorer.score(f"{word} {word}", [texts[top]])[0]
    assert twice == pytest.approx(2 * once, rel=1e-6)


def test_length_norm_is_lucenes_smallfloat(stage: BM25) -> None:
    from jnius import autoclass

    scorer = stage.text_scorer()
    small_float = autoclass("org.apache.lucene.util.SmallFloat")
    lengths = [*range(3000), 12_345, 99_999, 1_000_000, 2**31 - 1]
    assert scorer.encode_length(lengths).tolist() == [small_float.intToByte4(n) & 0xFF for n in lengths]
    assert scorer.length_table[scorer.encode_length([1000])[0]] < 1000  # lossy above 23 tokens, rounded down


def test_multifield_is_a_clear_error(scifact_slice) -> None:
    with pytest.raises(ConfigError, match="single-field"):
        BM25(scifact_slice, multifield=True, show_progress=False).text_scorer()
    with pytest.raises(ConfigError, match="single-field"):
        BM25(scifact_slice, fields={"title": 1.0}, show_progress=False).text_scorer()
    with pytest.raises(ConfigError, match="multifield"):
        BM25TextScorer(LuceneIndex("unused", {"settings": {"multifield": True}}))
