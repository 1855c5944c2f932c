"""Evaluation: rankkit equals ranx and Java trec_eval; significance tests and corrections."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rankkit.errors import ConfigError
from rankkit.evaluate import _adjust, compare, evaluate
from rankkit.types import Qrels, Run


def _random_runs(seed: int = 0, n_queries: int = 30) -> tuple[Qrels, Run, Run]:
    rng = random.Random(seed)
    qrels, a, b = {}, {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        docs = [f"d{i}" for i in range(40)]
        qrels[qid] = {d: rng.choice([0, 1, 2]) for d in rng.sample(docs, 8)}
        a[qid] = {d: rng.random() for d in docs}
        b[qid] = {d: s + (0.3 if qrels[qid].get(d, 0) > 0 else 0.0) for d, s in a[qid].items()}
    return Qrels(qrels), Run(a, name="a"), Run(b, name="b")


def test_evaluate_equals_ranx_directly() -> None:
    import ranx

    qrels, run, _ = _random_runs()
    metrics = ["ndcg@10", "recall@100", "mrr@10", "map@100"]
    ours = evaluate(run, qrels, metrics)
    theirs = ranx.evaluate(ranx.Qrels.from_dict(qrels.to_dict()), ranx.Run.from_dict(run.to_dict()), metrics)
    for m in metrics:
        assert ours[m] == pytest.approx(float(theirs[m]), abs=1e-12)


def test_missing_queries_score_zero_and_unjudged_are_ignored() -> None:
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"d2": 1}})
    run = Run({"q1": {"d1": 1.0}, "q3": {"d9": 1.0}})
    assert evaluate(run, qrels, ["ndcg@10"])["ndcg@10"] == pytest.approx(0.5)
    per_q = evaluate(run, qrels, ["ndcg@10"], per_query=True)
    assert per_q == {"ndcg@10": {"q1": 1.0, "q2": 0.0}}


def test_negative_grades_count_as_non_relevant() -> None:
    qrels = Qrels({"q1": {"d1": 1, "d2": -1}})
    run = Run({"q1": {"d2": 2.0, "d1": 1.0}})
    assert evaluate(run, qrels, ["precision@1"])["precision@1"] == 0.0


@pytest.mark.slow
def test_evaluate_equals_ranx_and_trec_eval_on_bm25_scifact(data_dir: Path, tmp_path: Path) -> None:
    import ranx

    from rankkit.data import load_dataset
    from rankkit.index.lucene import trec_eval
    from rankkit.retrieve.bm25 import BM25

    ds = load_dataset("beir/scifact/test")
    run = BM25(ds, remove_query=True, show_progress=False)(ds.queries)
    run.to_trec(tmp_path / "run.trec")
    ds.qrels.to_trec(tmp_path / "qrels.txt")
    ours = evaluate(run, ds.qrels, ["ndcg@10", "recall@100"])
    direct = ranx.evaluate(ranx.Qrels.from_file(str(tmp_path / "qrels.txt"), kind="trec"),
                           ranx.Run.from_file(str(tmp_path / "run.trec"), kind="trec"), ["ndcg@10", "recall@100"])
    out = trec_eval(["-c", "-m", "ndcg_cut.10", "-m", "recall.100", str(tmp_path / "qrels.txt"),
                     str(tmp_path / "run.trec")])
    java = {line.split()[0]: float(line.split()[2]) for line in out.splitlines() if line.strip()}
    assert ours["ndcg@10"] == pytest.approx(float(direct["ndcg@10"]), abs=1e-12)
    assert ours["recall@100"] == pytest.approx(float(direct["recall@100"]), abs=1e-12)
    assert ours["ndcg@10"] == pytest.approx(java["ndcg_cut_10"], abs=1e-4)
    assert ours["recall@100"] == pytest.approx(java["recall_100"], abs=1e-4)


def test_compare_student_p_value_equals_scipy_paired_t_test() -> None:
    from scipy import stats

    qrels, a, b = _random_runs(1)
    c = compare([a, b], qrels, ["ndcg@10"], stat_test="student", correction="none")
    pa, pb = c.per_query["a"]["ndcg@10"], c.per_query["b"]["ndcg@10"]
    expected = stats.ttest_rel([pb[q] for q in pa], [pa[q] for q in pa]).pvalue
    assert c.p_values["b"]["ndcg@10"] == pytest.approx(expected, rel=1e-6)
    assert c.significant("b", "ndcg@10") == (expected < 0.05)
    wins, ties, losses = c.win_tie_loss["b"]["ndcg@10"]
    assert wins + ties + losses == 30
    assert "a" in c.table() and "ndcg@10" in c.table()


def test_holm_and_bonferroni_against_brute_force() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert _adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    # Holm: sorted p (0.005, 0.01, 0.03, 0.04) * (4, 3, 2, 1) = (0.02, 0.03, 0.06, 0.04) -> running max
    assert _adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert _adjust(p, "none") == p
    assert _adjust([0.9, 0.8], "holm") == [1.0, 1.0]


def test_compare_errors() -> None:
    qrels, a, b = _random_runs()
    with pytest.raises(ConfigError, match="unique"):
        compare([a, a], qrels)
    with pytest.raises(ConfigError, match="baseline 'zzz'"):
        compare([a, b], qrels, baseline="zzz")
    with pytest.raises(ConfigError, match="unknown correction"):
        compare([a, b], qrels, correction="sidak-ish")
    with pytest.raises(ConfigError, match="empty"):
        evaluate(a, Qrels(), ["ndcg@10"])


def test_identical_runs_get_p_one_not_nan() -> None:
    qrels, a, b = _random_runs(2)
    twin = a.with_name("twin")
    c = compare([a, twin, b], qrels, ["ndcg@10"], correction="holm")
    assert c.p_values["twin"]["ndcg@10"] == 1.0
    assert c.p_adjusted["twin"]["ndcg@10"] == 1.0
    assert c.p_adjusted["b"]["ndcg@10"] == pytest.approx(min(1.0, 2 * c.p_values["b"]["ndcg@10"]))


def test_package_evaluate_is_the_function_even_after_module_import() -> None:
    import importlib

    import rankkit

    importlib.import_module("rankkit.evaluate")
    assert callable(rankkit.evaluate) and callable(rankkit.compare)
    from rankkit import evaluate as ev

    assert ev is evaluate
