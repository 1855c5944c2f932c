"""Evaluation: rankkit equals ranx and Java trec_eval; significance tests and corrections; compact ids."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rankkit.errors import ConfigError, EvaluationError, RankkitError
from rankkit.evaluate import _adjust, _metric_list, compare, evaluate, fuse_runs
from rankkit.types import Qrels, Run

METRICS = ["ndcg@10", "recall@100", "mrr@10", "map@100", "precision@5", "ndcg@5"]


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


def test_comparison_table_prints_four_decimals_exactly() -> None:
    from rankkit.evaluate import Comparison

    metrics = ["ndcg@10", "recall@100"]
    c = Comparison(baseline="2019", metrics=metrics,
                   means={"2019": {"ndcg@10": 0.605, "recall@100": 0.5}, "b": {"ndcg@10": 0.7, "recall@100": 1.0}},
                   p_values={"b": {"ndcg@10": 0.01, "recall@100": 0.5}},
                   p_adjusted={"b": {"ndcg@10": 0.02, "recall@100": 0.5}},
                   win_tie_loss={"b": {m: (1, 0, 0) for m in metrics}}, stat_test="student", correction="holm",
                   alpha=0.05)
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in c.table().splitlines() if line.startswith("|")}
    assert rows["2019"] == ["0.6050", "0.5000"]  # a run named like a number stays a name, not 2019.0
    assert rows["b"] == ["0.7000*+", "1.0000 (p=0.500)"]
    assert "0.605 " not in c.table() and "0.5 " not in c.table()


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


# --- compact keys: ranx sees short fixed-width keys, never the ids ---------------------------------


def _by_rank(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """The run's scores replaced by ``n - rank`` in trec_eval's order (ties by docid descending)."""
    out = {}
    for q in qrels:
        ranked = run.ranked(q) if q in run else []
        out[q] = {d: float(len(ranked) - i) for i, (d, _) in enumerate(ranked)}
    return out


def _old_evaluate(run: Run, qrels: Qrels, metrics: list[str]) -> dict[str, dict[str, float]]:
    """The reference: ranx on the original ids, ties put in trec_eval's order (per query, ranx's query order)."""
    import ranx

    rr = ranx.Run.from_dict(_by_rank(run, qrels))
    rq = qrels.to_ranx()
    scores = ranx.evaluate(rq, rr, metrics, return_mean=False, make_comparable=True)
    return {m: dict(zip(list(rq.keys()), map(float, scores[m]), strict=True)) for m in metrics}


def _old_means(run: Run, qrels: Qrels, metrics: list[str]) -> dict[str, float]:
    import ranx

    rr = ranx.Run.from_dict(_by_rank(run, qrels))
    values = ranx.evaluate(qrels.to_ranx(), rr, metrics, make_comparable=True)
    return {m: float(values[m]) for m in metrics}


def _rename(run: Run | Qrels, qid: Callable[[str], str], docid: Callable[[str], str]) -> Any:
    data = {qid(q): {docid(d): v for d, v in docs.items()} for q, docs in run.items()}
    return Run(data, name=run.name) if isinstance(run, Run) else Qrels(data)


def _long_doc(d: str) -> str:  # 5,000 characters, unique, differing early
    return f"{d}/" + "x" * (4999 - len(d))


def _long_query(q: str) -> str:  # 5,000 characters, a shared prefix: the qids' order is kept
    return "q" * (5000 - len(q)) + q


def _tied_runs(seed: int = 3, n_queries: int = 12, n_docs: int = 60) -> tuple[Qrels, Run]:
    """Scores from {0, 0.5, 1}: long runs of ties that ranx's (unstable) sort must order as before."""
    rng = random.Random(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        docs = [f"d{i:03d}" for i in range(n_docs)]
        rng.shuffle(docs)
        qrels[f"q{q:02d}"] = {d: rng.choice([0, 1, 2]) for d in rng.sample(docs, 10)}
        run[f"q{q:02d}"] = {d: rng.choice([0.0, 0.5, 1.0]) for d in docs}
    return Qrels(qrels), Run(run, name="tied")


def test_metrics_bit_identical_to_ranx_on_original_ids() -> None:
    qrels, run, _ = _random_runs(5)
    assert evaluate(run, qrels, METRICS) == _old_means(run, qrels, METRICS)
    assert evaluate(run, qrels, METRICS, per_query=True) == _old_evaluate(run, qrels, METRICS)


def test_long_ids_give_identical_metrics_and_per_query_ids() -> None:
    qrels, run, _ = _random_runs(6, n_queries=8)
    long_qrels, long_run = _rename(qrels, _long_query, _long_doc), _rename(run, _long_query, _long_doc)
    assert evaluate(long_run, long_qrels, METRICS) == evaluate(run, qrels, METRICS)
    short = evaluate(run, qrels, METRICS, per_query=True)
    long = evaluate(long_run, long_qrels, METRICS, per_query=True)
    assert long == {m: {_long_query(q): v for q, v in per_q.items()} for m, per_q in short.items()}
    assert list(long["ndcg@10"]) == [_long_query(q) for q in short["ndcg@10"]]


def test_tie_order_is_unchanged_by_the_keys() -> None:
    qrels, run = _tied_runs()
    before = _old_evaluate(run, qrels, METRICS)
    assert evaluate(run, qrels, METRICS, per_query=True) == before
    # ties are ordered by docid (trec_eval), so the insertion order of the run changes nothing ...
    flipped = Run({q: dict(reversed(list(docs.items()))) for q, docs in run.items()}, name="tied")
    assert evaluate(flipped, qrels, METRICS, per_query=True) == before
    # ... while docids renamed so that their order is reversed do change tied ranks, exactly as the reference
    rev = {f"d{i:03d}": f"e{999 - i:03d}" for i in range(60)}
    run_r, qrels_r = _rename(run, str, rev.__getitem__), _rename(qrels, str, rev.__getitem__)
    assert evaluate(run_r, qrels_r, METRICS, per_query=True) == _old_evaluate(run_r, qrels_r, METRICS)


@pytest.mark.slow
def test_bm25_like_run_on_scifact_identical_before_and_after(scifact_dir: Path) -> None:
    """A pure-Python BM25 run (no Java) on SciFact test, raw and rounded to one decimal (ties)."""
    tok = re.compile(r"\w+")
    docs: dict[str, Counter[str]] = {}
    with open(scifact_dir / "corpus.jsonl") as fh:
        for line in fh:
            d = json.loads(line)
            docs[d["_id"]] = Counter(tok.findall(f"{d['title']} {d['text']}".lower()))
    qrels = Qrels.from_trec(scifact_dir / "qrels" / "test.tsv")
    with open(scifact_dir / "queries.jsonl") as fh:
        queries = {q["_id"]: q["text"] for q in map(json.loads, fh) if q["_id"] in qrels}
    postings: dict[str, list[tuple[str, int]]] = {}
    for d, tf in docs.items():
        for t, n in tf.items():
            postings.setdefault(t, []).append((d, n))
    avgdl = sum(sum(tf.values()) for tf in docs.values()) / len(docs)
    length = {d: sum(tf.values()) for d, tf in docs.items()}
    data = {}
    for q, text in queries.items():
        scores: dict[str, float] = {}
        for t in set(tok.findall(text.lower())):
            plist = postings.get(t, [])
            idf = math.log(1 + (len(docs) - len(plist) + 0.5) / (len(plist) + 0.5))
            for d, n in plist:
                scores[d] = scores.get(d, 0.0) + idf * n * 1.9 / (n + 0.9 * (0.6 + 0.4 * length[d] / avgdl))
        data[q] = dict(sorted(scores.items(), key=lambda x: -x[1])[:100])
    metrics = ["ndcg@10", "recall@100", "map@100", "mrr@10"]
    for run in (Run(data, name="bm25"), Run({q: {d: round(s, 1) for d, s in r.items()} for q, r in data.items()})):
        assert evaluate(run, qrels, metrics) == _old_means(run, qrels, metrics)
        assert evaluate(run, qrels, metrics, per_query=True) == _old_evaluate(run, qrels, metrics)
    assert evaluate(Run(data), qrels, ["ndcg@10"])["ndcg@10"] > 0.5  # a sane BM25


def test_compare_maps_ids_back_and_keeps_p_values() -> None:
    # student, not fisher: ranx seeds only the calling thread's RNG, so fisher p-values vary with threads
    qrels, a, b = _random_runs(7, n_queries=12)
    c = _rename(a, str, lambda d: d if d < "d2" else "z" + d).with_name("c")
    short = compare([a, b, c], qrels, ["ndcg@10", "map@100"], stat_test="student")
    long = compare([_rename(r, _long_query, _long_doc) for r in (a, b, c)], _rename(qrels, _long_query, _long_doc),
                   ["ndcg@10", "map@100"], stat_test="student")
    assert long.to_dict() == short.to_dict()
    assert long.per_query == {n: {m: {_long_query(q): v for q, v in pq.items()} for m, pq in r.items()}
                              for n, r in short.per_query.items()}
    assert short.per_query["b"] == _old_evaluate(b, qrels, ["ndcg@10", "map@100"])


@pytest.mark.parametrize(("method", "norm", "params"), [
    ("rrf", None, {}), ("wsum", "min-max", {"weights": [0.3, 0.7]}), ("sum", "min-max", {}), ("mnz", "zmuv", {}),
])
def test_fuse_runs_equals_ranx_on_original_ids_and_maps_long_ids_back(method: str, norm: str | None,
                                                                       params: dict[str, Any]) -> None:
    import ranx

    _, a, b = _random_runs(8, n_queries=6)
    _, tied = _tied_runs(n_queries=6)
    tied = Run({f"q{int(q[1:])}": {f"d{int(d[1:])}": s for d, s in docs.items()} for q, docs in tied.items()})
    inputs = [a, b, tied]
    if method == "wsum":
        params = {"weights": [0.2, 0.3, 0.5]}
    ours = fuse_runs(inputs, method=method, norm=norm, params=params, name="fused")
    ranx_runs = []
    for i, r in enumerate(inputs):
        rr = r.to_ranx()
        rr.name = f"in{i}"
        ranx_runs.append(rr)
    theirs = Run.from_ranx(ranx.fuse(runs=ranx_runs, norm=norm, method=method, params=params or None), name="fused")
    assert ours == theirs and list(ours) == list(theirs)
    assert all(list(ours[q]) == list(theirs[q]) for q in ours)
    long = fuse_runs([_rename(r, _long_query, _long_doc) for r in inputs], method=method, norm=norm, params=params,
                     name="fused")
    assert long == _rename(ours, _long_query, _long_doc)


def test_fuse_runs_errors() -> None:
    _, a, b = _random_runs(9, n_queries=3)
    with pytest.raises(ConfigError, match="at least two"):
        fuse_runs([a])
    with pytest.raises(EvaluationError, match=r"fusion input 1 \(run 'empty'\) has no results"):
        fuse_runs([a, Run({}, name="empty")])
    with pytest.raises(EvaluationError, match="cover different queries, e.g. 'q2'"):
        fuse_runs([a, Run({q: b[q] for q in ("q0", "q1")}, name="short")])


# --- errors ---------------------------------------------------------------------------------------


def test_empty_run_raises_a_clear_error() -> None:
    qrels, _, _ = _random_runs(n_queries=4)
    with pytest.raises(EvaluationError, match=r"run 'nothing' is empty: it has 0 queries and 0 results, "
                                              r"the qrels judge 4 queries, 0 queries in common"):
        evaluate(Run({}, name="nothing"), qrels)
    with pytest.raises(EvaluationError, match="is empty: it has 2 queries and 0 results"):
        evaluate(Run({"q0": {}, "q1": {}}, name="blank"), qrels)


def test_run_without_judged_query_names_counts_and_sample_qids() -> None:
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"d2": 1}})
    run = Run({"1": {"d1": 1.0}, "2": {"d2": 1.0}, "3": {"d2": 1.0}}, name="bm25")
    with pytest.raises(EvaluationError) as info:
        evaluate(run, qrels, ["ndcg@10"])
    assert str(info.value) == ("run 'bm25' has no result for any judged query: it has 3 queries and 3 results, the "
                               "qrels judge 2 queries, 0 queries in common (run qids e.g. '1', '2', '3'; qrels qids "
                               "e.g. 'q1', 'q2')")
    assert isinstance(info.value, RankkitError) and isinstance(info.value, ValueError)
    with pytest.raises(EvaluationError, match="has no result for any judged query: .* 1 queries in common$"):
        evaluate(Run({"q1": {}, "x": {"d1": 1.0}}, name="r"), qrels)
    with pytest.raises(EvaluationError, match="run 'bm25' has no result"):
        compare([Run({"q1": {"d1": 1.0}}, name="ok"), run], qrels)
    long = Run({"x" * 5000: {"d1": 1.0}}, name="long")
    with pytest.raises(EvaluationError, match=r"run qids e.g. 'x{30}'\.\.\. \(5000 chars\);"):
        evaluate(long, qrels)


def test_partially_judged_run_is_evaluated_on_judged_queries() -> None:
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}})
    run = Run({"q1": {"d1": 1.0}, "q2": {}, "q9": {"d3": 5.0}})
    assert evaluate(run, qrels, ["recall@10"], per_query=True) == {"recall@10": {"q1": 1.0, "q2": 0.0, "q3": 0.0}}
    assert evaluate(run, qrels, "recall@10") == {"recall@10": pytest.approx(1 / 3)}


def test_empty_qrels_and_bad_metrics_raise_clear_errors() -> None:
    _, run, _ = _random_runs(n_queries=2)
    qrels, _, _ = _random_runs(n_queries=2)
    with pytest.raises(EvaluationError, match=r"qrels are empty \(0 queries, 0 judgements\)"):
        evaluate(run, Qrels())
    with pytest.raises(EvaluationError, match=r"qrels are empty \(1 queries, 0 judgements\)"):
        evaluate(run, Qrels({"q0": {}}))
    for bad in ("ndgc@10", "ndcg@ten", "ndcg@-1", "recall@"):
        with pytest.raises(EvaluationError, match=f"unknown metric {re.escape(repr(bad))}: .*supported: hits"):
            evaluate(run, qrels, ["ndcg@10", bad])
        with pytest.raises(EvaluationError, match="unknown metric"):
            compare([run, run.with_name("b")], qrels, bad)
    with pytest.raises(EvaluationError, match="no metric given"):
        evaluate(run, qrels, [])
    valid = ["ndcg@10-l2", "rbp.95", "r-precision", "map", "hit_rate@3"]
    assert _metric_list(valid) == valid and _metric_list("mrr@10") == ["mrr@10"]


def test_tied_scores_follow_trec_eval_order() -> None:
    """Ties rank by docid descending (trec_eval's order, and Run.ranked's), whatever ranx's own sort does."""
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"b": 1}})
    run = Run({"q1": {"d1": 1.0, "d2": 1.0, "d3": 1.0}, "q2": {"a": 2.0, "b": 1.0, "c": 1.0, "z": 1.0}})
    per_query = evaluate(run, qrels, ["mrr", "precision@1"], per_query=True)
    assert per_query["mrr"] == {"q1": 1 / 3, "q2": 1 / 4}
    assert per_query["precision@1"] == {"q1": 0.0, "q2": 0.0}


@pytest.mark.slow
def test_tied_run_equals_java_trec_eval(tmp_path: Path) -> None:
    """A run with many ties (scores rounded to one decimal) scores as Java trec_eval scores it."""
    import random

    from rankkit.index.lucene import trec_eval

    rng = random.Random(3)
    qrels = Qrels({f"q{q}": {f"d{d}": rng.randint(0, 2) for d in rng.sample(range(60), 8)} for q in range(40)})
    run = Run({f"q{q}": {f"d{d}": round(rng.random(), 1) for d in rng.sample(range(60), 30)} for q in range(40)})
    run.to_trec(tmp_path / "run.trec")
    qrels.to_trec(tmp_path / "qrels.txt")
    ours = evaluate(run, qrels, ["ndcg@10", "map@100", "mrr"])
    out = trec_eval(["-c", "-m", "ndcg_cut.10", "-m", "map", "-m", "recip_rank", str(tmp_path / "qrels.txt"),
                     str(tmp_path / "run.trec")])
    java = {line.split()[0]: float(line.split()[2]) for line in out.splitlines() if line.strip()}
    assert ours["ndcg@10"] == pytest.approx(java["ndcg_cut_10"], abs=1e-4)
    assert ours["map@100"] == pytest.approx(java["map"], abs=1e-4)
    assert ours["mrr"] == pytest.approx(java["recip_rank"], abs=1e-4)
