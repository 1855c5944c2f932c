"""Training groups: positives from qrels, negatives from the run, determinism, errors, dev hold-out."""

from __future__ import annotations

import pytest

from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError, DatasetError
from rankkit.train.groups import GroupConfig, build_groups, holdout
from rankkit.types import Document, Qrels, Query, Run

DOCS = [Document(f"d{i}", f"text {i}") for i in range(40)]
QRELS = Qrels({"q1": {"d1": 1, "d2": 2, "d3": 0}, "q2": {"d5": 1}, "q3": {"d7": 1}})
QUERIES = [Query("q1", "one"), Query("q2", "two"), Query("q3", "three")]
RUN = Run({"q1": {f"d{i}": 50.0 - i for i in range(20)},
           "q2": {f"d{i}": 30.0 - i for i in range(3, 12)},
           "q3": {"d7": 5.0, "d8": 4.0}})


def _ds(qrels: Qrels = QRELS, queries: list[Query] = QUERIES) -> Dataset:
    return Dataset("toy", lambda: iter(DOCS), queries, qrels)


def test_one_group_per_relevant_doc_with_hard_negatives_from_the_run() -> None:
    cfg = GroupConfig(group_size=5, negatives_depth=10)
    groups = build_groups(_ds(), RUN, cfg, seed=1)
    assert [(g.query.qid, g.docs[0].docid) for g in groups] == [("q1", "d1"), ("q1", "d2"), ("q2", "d5"), ("q3", "d7")]
    for g in groups:
        assert len(g.docs) == 5 and list(g.labels[1:]) == [0.0] * 4 and g.labels[0] > 0
        relevant = {d for d, r in QRELS[g.query.qid].items() if r > 0}
        assert not relevant & {d.docid for d in g.docs[1:]}
        assert len({d.docid for d in g.docs}) == 5
    q1 = groups[0]
    top10 = {f"d{i}" for i in range(10)}
    assert {d.docid for d in q1.docs[1:]} <= top10  # hard negatives come from the top 10
    assert groups[1].labels[0] == 2.0  # graded positive keeps its grade
    # q3's run has one non-relevant candidate: the rest are random corpus docs (still not relevant)
    assert groups[3].docs[1].docid == "d8"


def test_sampling_is_deterministic_per_seed_and_epoch() -> None:
    cfg = GroupConfig(group_size=4, negatives_depth=15)
    ids = lambda gs: [[d.docid for d in g.docs] for g in gs]  # noqa: E731
    a = ids(build_groups(_ds(), RUN, cfg, seed=3, epoch=0))
    assert a == ids(build_groups(_ds(), RUN, cfg, seed=3, epoch=0))
    assert a != ids(build_groups(_ds(), RUN, cfg, seed=3, epoch=1))
    top = ids(build_groups(_ds(), RUN, GroupConfig(group_size=4, sampling="top"), seed=3))
    assert top[0] == ["d1", "d0", "d3", "d4"]


def test_random_negatives_and_difficulty() -> None:
    cfg = GroupConfig(group_size=6, negatives_depth=5, random_negatives=2)
    groups = build_groups(_ds(), RUN, cfg, seed=0, difficulty=lambda q, d: 0.5)
    assert all(len(g.docs) == 6 and g.difficulty == (0.5,) * 6 for g in groups)


def test_no_qrels_and_query_without_positive_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="has no qrels"):
        build_groups(_ds(Qrels()), RUN)
    qrels = Qrels({**QRELS.to_dict(), "q4": {"d9": 0}})
    ds = _ds(qrels, [*QUERIES, Query("q4", "four")])
    with pytest.raises(DatasetError, match="training query 'q4' has no relevant document"):
        build_groups(ds, RUN)
    groups = build_groups(ds, RUN, GroupConfig(on_missing_positive="skip"))
    assert "q4" not in {g.query.qid for g in groups}


def test_bad_group_config_values() -> None:
    with pytest.raises(ValueError, match="group_size"):
        GroupConfig(group_size=1)
    with pytest.raises(ValueError, match="sampling"):
        GroupConfig(sampling="best")


def test_holdout_is_disjoint_and_deterministic() -> None:
    train, dev = holdout(_ds(), 1, seed=5)
    assert len(dev.queries) == 1 and len(train.queries) == 2
    assert not {q.qid for q in train.queries} & {q.qid for q in dev.queries}
    assert [q.qid for q in holdout(_ds(), 1, seed=5)[1].queries] == [q.qid for q in dev.queries]
    assert set(dev.qrels) == {q.qid for q in dev.queries}
    with pytest.raises(ConfigError, match="impossible"):
        holdout(_ds(), 3)
