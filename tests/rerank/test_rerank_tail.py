"""Reranked runs keep the tail (issue 11): documents below ``depth`` follow the reranked head in first-stage order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rankkit.config import from_mapping
from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError
from rankkit.evaluate import evaluate
from rankkit.pipeline import Cutoff, Stage
from rankkit.rerank.base import Reranker, RerankerOptions, append_tail
from rankkit.types import Document, Qrels, Query, Run

DOCS = [Document(f"d{i}", f"doc {i} text") for i in range(10)]
QUERIES = [Query("q1", "first query"), Query("q2", "second query")]
# q1 has ties inside the tail (d3..d6 at 5.0: rank order d6, d5, d4, d3) and negative scores; q2 is shorter than depth.
FIRST = Run({"q1": {"d0": 9.0, "d1": 8.0, "d2": 7.0, "d3": 5.0, "d4": 5.0, "d5": 5.0, "d6": 5.0, "d7": -2.0,
                    "d8": -3.0, "d9": -30.0},
             "q2": {"d4": 1.0, "d8": 0.5}}, name="first")
QRELS = Qrels({"q1": {"d1": 1, "d4": 1, "d9": 2}, "q2": {"d8": 1}})


def _dataset() -> Dataset:
    return Dataset("toy-tail", lambda: iter(DOCS), QUERIES, QRELS)


class Reverse(Reranker):
    """A reranker that reverses the first-stage order of its candidates (scores 0, 1, 2, ...)."""

    kind = "reverse"

    def score(self, queries: dict[str, str], candidates: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        return {q: {d: float(i) for i, d in enumerate(ds)} for q, ds in candidates.items()}


class Fixed(Stage):
    """A first stage returning a fixed run."""

    name = "fixed"

    def __init__(self, run: Run) -> None:
        self.run = run

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        return self.run


def _order(run: Run, qid: str) -> list[str]:
    return [d for d, _ in run.ranked(qid)]


def _check_tail(out: Run, first: Run, depth: int) -> None:
    """Beyond ``depth``: ``first``'s documents in ``first``'s rank order, every one below every head document."""
    for qid in out:
        head = _order(out, qid)[:depth]
        assert sorted(head) == sorted(_order(first, qid)[:depth])
        assert _order(out, qid)[depth:] == _order(first, qid)[depth:]
        if len(out[qid]) > depth:
            scores = [s for _, s in out.ranked(qid)]
            assert max(scores[depth:]) < min(scores[:depth])
            assert all(a > b for a, b in zip(scores[depth:], scores[depth + 1:]))  # distinct: ties cannot reorder


def test_tail_follows_the_head_in_first_stage_order() -> None:
    out = Reverse(_dataset(), depth=3, show_progress=False)(QUERIES, FIRST)
    assert _order(out, "q1") == ["d2", "d1", "d0", "d6", "d5", "d4", "d3", "d7", "d8", "d9"]
    assert _order(out, "q2") == ["d8", "d4"]  # shorter than depth: all reranked, no tail
    _check_tail(out, FIRST, 3)
    assert out["q1"]["d6"] == min(out["q1"][d] for d in ("d0", "d1", "d2")) - 1.0  # documented step of 1
    assert out.name == "reverse"


def test_recall_at_full_depth_equals_the_first_stage() -> None:
    out = Reverse(_dataset(), depth=3, show_progress=False)(QUERIES, FIRST)
    metrics = ["recall@1000", "recall@10"]
    assert evaluate(out, QRELS, metrics) == evaluate(FIRST, QRELS, metrics)
    head_only = Reverse(_dataset(), depth=3, keep_tail=False, show_progress=False)(QUERIES, FIRST)
    assert evaluate(head_only, QRELS, "recall@1000")["recall@1000"] < evaluate(FIRST, QRELS, "recall@1000")[
        "recall@1000"]


def test_keep_tail_false_gives_the_head_only_run() -> None:
    head_only = Reverse(_dataset(), depth=3, keep_tail=False, show_progress=False)(QUERIES, FIRST)
    assert {q: len(head_only[q]) for q in head_only} == {"q1": 3, "q2": 2}
    assert head_only == Reverse(_dataset(), depth=3, show_progress=False)(QUERIES, FIRST.top_k(3))
    full = Reverse(_dataset(), depth=3, show_progress=False)(QUERIES, FIRST)
    assert {d: full["q1"][d] for d in head_only["q1"]} == dict(head_only["q1"])  # the head is untouched
    # depth None reranks everything: nothing to keep, the same run either way
    everything = Reverse(_dataset(), depth=None, show_progress=False)(QUERIES, FIRST)
    assert everything == Reverse(_dataset(), depth=None, keep_tail=False, show_progress=False)(QUERIES, FIRST)


def test_queries_without_text_stay_out_and_tail_scores_stay_distinct_at_any_scale() -> None:
    run = Run({"q1": dict(FIRST["q1"]), "q9": {"d1": 1.0}})
    out = Reverse(_dataset(), depth=2, show_progress=False)(QUERIES, run)
    assert set(out) == {"q1"}
    huge = append_tail(Run({"q": {"a": 1e30, "b": 3e30}}), Run({"q": {"a": 1, "b": 1, "c": 0.0, "d": 0.0, "e": 0.0}}))
    assert _order(huge, "q") == ["b", "a", "e", "d", "c"] and len(set(huge["q"].values())) == 5
    empty_head = append_tail(Run({"q": {}}), Run({"q": {"x": 2.0, "y": 2.0}}))
    assert _order(empty_head, "q") == ["y", "x"]


def test_a_cutoff_after_the_reranker_still_cuts() -> None:
    pipe = Fixed(FIRST) >> Reverse(_dataset(), depth=3, show_progress=False) % 5
    assert isinstance(pipe.stages[-1], Cutoff)
    out = pipe(QUERIES)
    assert _order(out, "q1") == ["d2", "d1", "d0", "d6", "d5"] and len(out["q2"]) == 2


def test_keep_tail_is_a_typed_option() -> None:
    assert RerankerOptions().keep_tail is True
    assert from_mapping(RerankerOptions, {"keep_tail": False}).keep_tail is False
    with pytest.raises(ConfigError, match="keep_tail"):
        from_mapping(RerankerOptions, {"keep_tail": "no"})
    with pytest.raises(ConfigError, match="keep_tail"):
        Reverse(_dataset(), keep_tail=1)


class _Tok:
    def __call__(self, texts, add_special_tokens=False, truncation=True, max_length=None):
        return {"input_ids": [t.split()[:max_length] for t in texts]}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(ids)


class _Oracle:
    """Picks the shown document with the largest number in its text ("doc N text")."""

    def __init__(self) -> None:
        self.tokenizer = _Tok()
        self.stats: Counter[str] = Counter()

    def choose(self, comparisons):
        self.stats["llm_calls"] += len(comparisons)
        return [max(range(len(docs)), key=lambda j: int(docs[j].split()[1])) for _, docs in comparisons]


def test_setwise_keeps_the_tail_and_its_cache_key_names_it() -> None:
    from rankkit.rerank.setwise import Setwise

    first = Run({"q1": {f"d{i}": 10.0 - i for i in range(10)}}, name="first")
    stage = Setwise(_dataset(), llm=_Oracle(), model="no/such-model", k=2, depth=5, show_progress=False)
    out = stage(QUERIES[:1], first)
    # sorted top 2 of the 5 candidates (d4, d3), the other candidates in first-stage order, then the tail
    assert _order(out, "q1") == ["d4", "d3", "d0", "d1", "d2", "d5", "d6", "d7", "d8", "d9"]
    _check_tail(out, first, 5)
    cut = Setwise(_dataset(), llm=_Oracle(), model="no/such-model", k=2, depth=5, keep_tail=False,
                  show_progress=False)
    assert _order(cut(QUERIES[:1], first), "q1") == ["d4", "d3", "d0", "d1", "d2"]
    assert stage.cache_spec() != cut.cache_spec()


def test_interpolated_head_stays_above_the_tail(tiny_bert: Path) -> None:
    from rankkit.rerank.ce_model import CrossEncoderModel
    from rankkit.rerank.cross_encoder import CrossEncoder

    scorer = CrossEncoderModel.new(str(tiny_bert), head="mean", max_length=32, seed=0)
    first = Run({"q1": {f"d{i}": 100.0 - i for i in range(10)}, "q2": {f"d{i}": -float(i) for i in range(10)}})
    for w in (None, 0.0, 0.5, 1.0):
        out = CrossEncoder(_dataset(), scorer=scorer, depth=4, interpolate=w, show_progress=False)(QUERIES, first)
        _check_tail(out, first, 4)
        head = CrossEncoder(_dataset(), scorer=scorer, depth=4, interpolate=w, keep_tail=False,
                            show_progress=False)(QUERIES, first)
        assert all({d: out[q][d] for d in head[q]} == dict(head[q]) for q in head)
    # weight 0: the interpolated head is in the first stage's order, so the whole run is the first stage's order
    w0 = CrossEncoder(_dataset(), scorer=scorer, depth=4, interpolate=0.0, show_progress=False)(QUERIES, first)
    assert all(_order(w0, q) == _order(first, q) for q in first)
