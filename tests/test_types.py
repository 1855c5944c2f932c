"""Core types (rankkit/types.py) and TREC file I/O (rankkit/trec.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rankkit import trec
from rankkit.errors import FormatError
from rankkit.types import Document, Qrels, Query, Run, TrainingGroup, as_queries, rank_items

SCORES = {"q1": {"d1": 0.1 + 0.2, "d2": 1 / 3, "d3": -1e-300, "d4": 12345.678901234567}, "q2": {"x": 2.0}}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_query_document_values() -> None:
    assert Document("d", "body", "Title").contents == "Title body"
    assert Document("d", "body").contents == "body"
    with pytest.raises(AttributeError):
        Query("1", "x").text = "y"  # type: ignore[misc]


def test_run_trec_round_trip_is_exact(tmp_path: Path) -> None:
    run = Run(SCORES, name="exact")
    run.to_trec(tmp_path / "exact.trec")
    back = Run.from_trec(tmp_path / "exact.trec")
    assert back == run and back.name == "exact"
    assert back["q1"]["d1"] == 0.1 + 0.2  # full float precision on disk
    assert back.fingerprint() == run.fingerprint()
    lines = (tmp_path / "exact.trec").read_text().splitlines()
    assert lines[0].split() == ["q1", "Q0", "d4", "1", repr(12345.678901234567), "exact"]


def test_ties_break_by_docid_descending_like_trec_eval() -> None:
    run = Run({"q": {"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5, "top": 2.0}})
    assert [d for d, _ in run.ranked("q")] == ["top", "c", "b", "a", "z"]
    assert [d for d, _ in rank_items({"d10": 1.0, "d9": 1.0, "d1": 1.0})] == ["d9", "d10", "d1"]  # string order


def test_top_k_keeps_best_with_tie_order() -> None:
    run = Run({"q": {"a": 1.0, "b": 1.0, "c": 3.0}, "r": {"x": 1.0}}, name="n")
    top = run.top_k(2)
    assert top.to_dict() == {"q": {"c": 3.0, "b": 1.0}, "r": {"x": 1.0}} and top.name == "n"
    with pytest.raises(ValueError, match="k >= 1"):
        run.top_k(0)


def test_run_is_read_only_and_fingerprint_is_order_independent() -> None:
    run = Run({"q": {"a": 1.0, "b": 2.0}})
    with pytest.raises(TypeError):
        run["q"]["a"] = 5.0  # type: ignore[index]
    assert Run({"q": {"b": 2.0, "a": 1.0}}).fingerprint() == run.fingerprint()
    assert Run({"q": {"a": 1.0, "b": 2.5}}).fingerprint() != run.fingerprint()


def test_concat_rejects_overlapping_shards() -> None:
    merged = Run.concat([Run({"q1": {"a": 1}}, name="s"), Run({"q2": {"b": 2}})])
    assert set(merged) == {"q1", "q2"} and merged.name == "s"
    with pytest.raises(ValueError, match="'q1' appears in more than one shard"):
        Run.concat([Run({"q1": {"a": 1}}), Run({"q1": {"b": 2}})])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4\n", ":2: expected 6 columns (qid Q0 docid rank score tag), found 5"),
        ("q1 Q0 d1 1 0.5 t extra\n", ":1: expected 6 columns"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 high t\n", ":2: score 'high' is not a number"),
        ("q1 Q0 d1 1 nan t\n", ":1: score 'nan' is not finite"),
        ("q1 Q0 d1 1 0.5 t\nq2 Q0 d1 1 0.5 t\nq1 Q0 d1 3 0.1 t\n", ":3: docid 'd1' appears twice for query 'q1'"),
    ],
)
def test_malformed_run_lines_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path / "bad.trec", content)
    with pytest.raises(FormatError, match=re.escape(f"{path}{message}")):
        Run.from_trec(path)


def test_missing_run_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="file not found"):
        trec.read_run(tmp_path / "absent.trec")


def test_write_run_rejects_bad_tag(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="run tag"):
        Run({"q": {"a": 1.0}}).to_trec(tmp_path / "r.trec", tag="two words")
    assert not (tmp_path / "r.trec").exists()


def test_atomic_write_leaves_old_file_on_error(tmp_path: Path) -> None:
    path = write(tmp_path / "out.txt", "old\n")
    with pytest.raises(RuntimeError), trec.atomic_write(path) as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_qrels_trec_and_beir_tsv_with_header(tmp_path: Path) -> None:
    trec_path = write(tmp_path / "qrels.txt", "1 0 d1 2\n1 0 d2 0\n2 Q0 d3 1\n")
    beir_path = write(tmp_path / "test.tsv", "query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t0\n2\td3\t1\n")
    assert Qrels.from_trec(trec_path) == Qrels.from_trec(beir_path)
    qrels = Qrels.from_trec(beir_path)
    assert qrels.to_dict() == {"1": {"d1": 2, "d2": 0}, "2": {"d3": 1}} and qrels.num_judgements == 3
    assert qrels.relevant("1") == ["d1"] and qrels.relevant("9") == []
    qrels.to_trec(tmp_path / "out.qrels")
    assert Qrels.from_trec(tmp_path / "out.qrels") == qrels
    assert qrels.restrict(["2"]).to_dict() == {"2": {"d3": 1}}


def test_qrels_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "query-id\tcorpus-id\tscore\n1\td1\tyes\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}:2: relevance grade 'yes' is not an integer")):
        Qrels.from_trec(path)
    path = write(tmp_path / "q.txt", "1 0 d1 1\n1 0\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}:2: expected 4 columns")):
        Qrels.from_trec(path)
    with pytest.raises(FormatError, match=r"qrels judge 1 query not in the queries: '3'"):
        Qrels({"1": {"a": 1}, "3": {"b": 1}}).check_queries(["1", "2"])


def test_as_queries_forms_and_empty_text() -> None:
    expected = [Query("1", "a"), Query("2", "b")]
    assert as_queries({"1": "a", "2": "b"}) == expected
    assert as_queries([("1", "a"), Query("2", "b")]) == expected
    with pytest.raises(FormatError, match=re.escape("topics.tsv: query '2' has empty text")):
        as_queries([("1", "a"), ("2", " \t")], source="topics.tsv")


def test_training_group_checks_lengths() -> None:
    docs = [Document("a", "x"), Document("b", "y")]
    assert TrainingGroup(Query("1", "q"), docs, [1.0, 0.0]).labels == [1.0, 0.0]
    with pytest.raises(ValueError, match="2 docs but 1 labels"):
        TrainingGroup(Query("1", "q"), docs, [1.0])


@pytest.mark.slow
def test_run_ranx_round_trip() -> None:
    run = Run(SCORES, name="bm25")
    as_ranx = run.to_ranx()
    assert as_ranx.name == "bm25"
    back = Run.from_ranx(as_ranx)
    assert back == run and back.name == "bm25"
    assert Run.from_ranx(as_ranx, name="other").name == "other"


def test_qrels_mixed_column_counts_name_the_line(tmp_path) -> None:
    from rankkit.errors import FormatError
    from rankkit.types import Qrels

    path = tmp_path / "mixed.txt"
    path.write_text("q1 0 d1 1\nq1 0 d2\n")
    with pytest.raises(FormatError, match=r"mixed\.txt:2: expected 4 columns"):
        Qrels.from_trec(path)


def test_rank_items_equals_brute_force_order() -> None:
    """Score descending, ties by docid descending (trec_eval), against a comparison-function sort."""
    import functools
    import random

    from rankkit.types import rank_items

    def cmp(a: tuple[str, float], b: tuple[str, float]) -> int:
        if a[1] != b[1]:
            return -1 if a[1] > b[1] else 1
        return -1 if a[0] > b[0] else (1 if a[0] < b[0] else 0)

    rng = random.Random(5)
    for _ in range(200):
        docs = {f"d{rng.randint(0, 300)}": rng.choice([0.0, -0.0, 1.0, 0.5, rng.random(), float(rng.randint(-3, 3))])
                for _ in range(rng.randint(0, 80))}
        assert rank_items(docs) == sorted(docs.items(), key=functools.cmp_to_key(cmp))
