"""Local BEIR folder loader: content, split filtering, streaming and every error message."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rankkit.data import load_beir_folder, load_dataset
from rankkit.errors import DatasetError, FormatError
from rankkit.types import Document, Query


def test_loads_split_and_keeps_only_judged_queries(tmp_path: Path, beir: SimpleNamespace) -> None:
    ds = load_beir_folder(beir.make(tmp_path / "tiny"), "test")
    assert ds.queries == [Query("q1", "first query"), Query("q3", "third query")]
    assert ds.qrels.to_dict() == {"q1": {"d1": 1}, "q3": {"d3": 2}}
    docs = list(ds.docs_iter())
    assert docs[0] == Document("d1", "alpha text", "Alpha")
    assert docs[2] == Document("d3", "gamma text without title", "")
    assert ds.docs_count() == 3
    assert ds.docs(["d2"])["d2"].title == "Beta"
    train = load_beir_folder(tmp_path / "tiny", "train")
    assert [q.qid for q in train.queries] == ["q2"]


def test_load_dataset_dispatches_to_folder(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny")
    assert [q.qid for q in load_dataset(folder).queries] == ["q1", "q3"]
    assert [q.qid for q in load_dataset(str(folder), "train").queries] == ["q2"]


def test_corpus_is_streamed_not_held(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny")
    ds = load_beir_folder(folder)
    assert ds.docs_count() == 3
    beir.write_jsonl(folder / "corpus.jsonl", [*beir.CORPUS, {"_id": "d4", "text": "late"}])
    assert [d.docid for d in ds.docs_iter()][-1] == "d4"


def test_missing_folder_and_files_name_the_path(tmp_path: Path, beir: SimpleNamespace) -> None:
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "nope"))):
        load_beir_folder(tmp_path / "nope")
    folder = beir.make(tmp_path / "tiny")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"tiny has no queries\.jsonl"):
        load_beir_folder(folder)
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"corpus\.jsonl"):
        load_beir_folder(folder)


def test_folder_without_corpus_is_not_beir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="without corpus.jsonl"):
        load_dataset(tmp_path / "empty")


def test_unknown_split_lists_available(tmp_path: Path, beir: SimpleNamespace) -> None:
    with pytest.raises(DatasetError, match=r"no split 'dev'.*available splits: test, train"):
        load_beir_folder(beir.make(tmp_path / "tiny"), "dev")


def test_malformed_json_line_in_queries(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", queries=['{"_id": "q1", "text": "ok"}', '{"_id": "q3", "text": '])
    with pytest.raises(FormatError, match=re.escape(f"{folder / 'queries.jsonl'}:2: malformed JSON")):
        load_beir_folder(folder)


def test_malformed_json_line_in_corpus_surfaces_when_streamed(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", corpus=[beir.CORPUS[0], "not json", beir.CORPUS[1]])
    ds = load_beir_folder(folder)
    with pytest.raises(FormatError, match=re.escape(f"{folder / 'corpus.jsonl'}:2: malformed JSON")):
        list(ds.docs_iter())


def test_json_line_that_is_not_an_object(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", queries=['["q1", "text"]'])
    with pytest.raises(FormatError, match=r"queries\.jsonl:1: expected a JSON object"):
        load_beir_folder(folder)


@pytest.mark.parametrize(
    ("rows", "line", "key"),
    [
        ([{"_id": "q1", "text": "a"}, {"text": "no id"}], 2, "_id"),
        ([{"_id": "q1", "text": "a"}, {"_id": "q3", "text": "b"}, {"_id": "q4"}], 3, "text"),
    ],
)
def test_missing_key_in_queries(tmp_path: Path, beir: SimpleNamespace, rows: list, line: int, key: str) -> None:
    folder = beir.make(tmp_path / "tiny", queries=rows)
    with pytest.raises(FormatError, match=re.escape(f"queries.jsonl:{line}: missing key '{key}'")):
        load_beir_folder(folder)


def test_missing_text_key_in_corpus(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", corpus=[beir.CORPUS[0], {"_id": "d2", "title": "t", "body": "x"}])
    with pytest.raises(FormatError, match=re.escape("corpus.jsonl:2: missing key 'text'")):
        list(load_beir_folder(folder).docs_iter())


def test_empty_query_text_names_file_and_line(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", queries=[{"_id": "q1", "text": "ok"}, {"_id": "q3", "text": "  "}])
    with pytest.raises(FormatError, match=re.escape(f"{folder / 'queries.jsonl'}:2: query 'q3' has empty text")):
        load_beir_folder(folder)


def test_duplicate_query_id(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", queries=[{"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"}])
    with pytest.raises(FormatError, match=r"queries\.jsonl:2: query 'q1' appears twice \(first on line 1\)"):
        load_beir_folder(folder)


def test_qrels_for_unknown_query_name_qrels_file_line_and_qid(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", qrels={"test": [("q1", "d1", 1), ("q9", "d2", 1)]})
    qrels = folder / "qrels" / "test.tsv"
    with pytest.raises(FormatError, match=re.escape(f"{qrels}:3: qrels judge 1 query not in the queries: 'q9'")):
        load_beir_folder(folder)


def test_malformed_qrels_line(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny")
    beir.write_qrels(folder / "qrels" / "test.tsv", [("q1", "d1", 1)])
    with open(folder / "qrels" / "test.tsv", "a", encoding="utf-8") as fh:
        fh.write("q3\td3\thigh\n")
    with pytest.raises(FormatError, match=r"test\.tsv:3: relevance grade 'high' is not an integer"):
        load_beir_folder(folder)
