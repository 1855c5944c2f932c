"""The cross_encoder stage and BM25 interpolation: depth, weights, YAML, caching, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError
from rankkit.pipeline import Pipeline
from rankkit.rerank.ce_model import CrossEncoderModel
from rankkit.rerank.cross_encoder import CrossEncoder
from rankkit.rerank.interpolate import interpolate, minmax, select_weight
from rankkit.types import Document, Qrels, Query, Run

DOCS = [Document(f"d{i}", f"document number {i} about topic {i % 3}", title=f"t{i}") for i in range(12)]
QUERIES = [Query("q1", "topic 1"), Query("q2", "number 4")]
FIRST = Run({"q1": {f"d{i}": 12.0 - i for i in range(12)}, "q2": {f"d{i}": float(i) for i in range(12)}}, name="bm25")


@pytest.fixture(scope="module")
def scorer(tiny_bert: Path) -> CrossEncoderModel:
    return CrossEncoderModel.new(str(tiny_bert), head="mean", max_length=32, seed=0)


def _dataset() -> Dataset:
    return Dataset("toy", lambda: iter(DOCS), QUERIES, Qrels({"q1": {"d1": 1}, "q2": {"d4": 1}}))


def test_minmax_and_interpolation_endpoints() -> None:
    assert minmax({"a": 1.0, "b": 3.0}) == {"a": 0.0, "b": 1.0}
    assert minmax({"a": 2.0, "b": 2.0}) == {"a": 1.0, "b": 1.0}
    ce = Run({"q1": {"d0": 0.1, "d1": 0.9, "d2": 0.5}})
    first = Run({"q1": {"d0": 10.0, "d1": 5.0, "d2": 0.0, "d9": 99.0}})
    assert interpolate(first, ce, 1.0).ranked("q1")[0][0] == "d1"
    assert [d for d, _ in interpolate(first, ce, 0.0).ranked("q1")] == ["d0", "d1", "d2"]  # d9 not a candidate
    mid = interpolate(first, ce, 0.5)["q1"]
    assert mid["d1"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    with pytest.raises(ValueError):
        interpolate(first, ce, 1.5)


def test_select_weight_picks_the_best_dev_weight() -> None:
    first = Run({"q": {"a": 3.0, "b": 2.0, "c": 1.0}})
    ce = Run({"q": {"a": 0.0, "b": 0.1, "c": 1.0}})
    weight, values = select_weight(first, ce, Qrels({"q": {"c": 1}}), "ndcg@10")
    assert values[weight] == max(values.values()) == 1.0 and weight >= 0.5
    # relevant a beats b only while 1 - w > 0.5 + 0.5 w (w < 1/3): the largest such grid weight wins
    ce2 = Run({"q": {"a": 0.0, "b": 1.0, "c": 0.2}})
    weight, values = select_weight(first, ce2, Qrels({"q": {"a": 1}}), "ndcg@10")
    assert weight == 0.3 and values[0.4] < 1.0


def test_stage_reranks_top_depth_with_model_scores(scorer: CrossEncoderModel) -> None:
    stage = CrossEncoder(_dataset(), scorer=scorer, depth=5, keep_tail=False, show_progress=False)
    out = stage(QUERIES, FIRST)
    assert set(out["q1"]) == {f"d{i}" for i in range(5)} and set(out["q2"]) == {f"d{i}" for i in range(7, 12)}
    expected = scorer.score(["topic 1"], [DOCS[3].contents], device="cpu")[0]
    assert out["q1"]["d3"] == pytest.approx(float(expected), abs=1e-6)
    w0 = CrossEncoder(_dataset(), scorer=scorer, depth=5, interpolate=0.0, keep_tail=False,
                      show_progress=False)(QUERIES, FIRST)
    assert [d for d, _ in w0.ranked("q1")] == [d for d, _ in FIRST.top_k(5).ranked("q1")]


def test_raw_scores_are_cached_and_shared_across_weights(scorer: CrossEncoderModel, tmp_path: Path) -> None:
    a = CrossEncoder(_dataset(), scorer=scorer, depth=4, cache_dir=str(tmp_path), show_progress=False)
    b = CrossEncoder(_dataset(), scorer=scorer, depth=4, cache_dir=str(tmp_path), interpolate=0.3,
                     show_progress=False)
    a(QUERIES, FIRST)
    files = list((tmp_path / "cross-encoder").glob("*.trec"))
    assert len(files) == 1
    b(QUERIES, FIRST)
    assert list((tmp_path / "cross-encoder").glob("*.trec")) == files


def test_errors_without_run_and_auto_weight_without_tuning(scorer: CrossEncoderModel) -> None:
    with pytest.raises(ConfigError, match="rescores an incoming run"):
        CrossEncoder(_dataset(), scorer=scorer)(QUERIES)
    with pytest.raises(ConfigError, match="interpolate: auto needs a weight"):
        CrossEncoder(_dataset(), scorer=scorer, interpolate="auto", show_progress=False)(QUERIES, FIRST)
    with pytest.raises(ConfigError, match="interpolate must be"):
        CrossEncoder(_dataset(), scorer=scorer, interpolate=2)


def test_yaml_stage_with_a_path_relative_to_the_file(scorer: CrossEncoderModel, tmp_path: Path) -> None:
    scorer.meta["interpolation"] = {"weight": 0.4}
    scorer.save(tmp_path / "models" / "ce")
    (tmp_path / "pipes").mkdir()
    (tmp_path / "pipes" / "ce.yaml").write_text(
        "name: ce\nstages:\n  - cross_encoder: {model: ../models/ce, depth: 3, interpolate: auto, "
        "keep_tail: false, show_progress: false}\n")
    pipe = Pipeline.from_yaml(tmp_path / "pipes" / "ce.yaml", _dataset())
    assert pipe.stages[0].weight() == 0.4
    out = pipe(QUERIES, FIRST)
    assert all(len(out[q]) == 3 for q in out)
    # keep_tail (the default): the other 9 documents follow the same head, in BM25's order
    (tmp_path / "pipes" / "tail.yaml").write_text(
        "stages:\n  - cross_encoder: {model: ../models/ce, depth: 3, interpolate: auto, show_progress: false}\n")
    tail = Pipeline.from_yaml(tmp_path / "pipes" / "tail.yaml", _dataset())(QUERIES, FIRST)
    for q in out:
        assert tail.ranked(q)[:3] == out.ranked(q)
        assert [d for d, _ in tail.ranked(q)[3:]] == [d for d, _ in FIRST.ranked(q)[3:]]
    (tmp_path / "pipes" / "bad.yaml").write_text("stages:\n  - cross_encoder: {model: x, dept: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'dept' \(did you mean 'depth'\?\)"):
        Pipeline.from_yaml(tmp_path / "pipes" / "bad.yaml", _dataset())
