"""ir_datasets loads, offline through priming: counts, parity with the BEIR folder loader, errors."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rankkit.data import available_datasets, load_beir_folder, load_dataset, prime_beir_folder
from rankkit.data.irds import ir_datasets_module
from rankkit.errors import DatasetError, FormatError


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset_id", "docs", "queries", "judgements"),
    [
        ("beir/scifact/test", 5183, 300, 339),
        ("beir/scifact/train", 5183, 809, 919),
        ("cranfield", 1400, 225, 1837),
        ("vaswani", 11429, 93, 2083),
    ],
)
def test_counts_offline(data_dir: Path, dataset_id: str, docs: int, queries: int, judgements: int) -> None:
    ds = load_dataset(dataset_id)
    assert (ds.docs_count(), len(ds.queries), ds.qrels.num_judgements) == (docs, queries, judgements)
    assert sum(1 for _ in ds.docs_iter()) == docs
    assert set(ds.qrels) <= {q.qid for q in ds.queries}
    first = next(ds.docs_iter())
    assert ds.docs([first.docid]) == {first.docid: first}


@pytest.mark.slow
def test_scifact_folder_matches_ir_datasets(scifact_dir: Path) -> None:
    via_irds = load_dataset("beir/scifact/test")
    via_folder = load_beir_folder(scifact_dir, "test")
    assert via_folder.queries == via_irds.queries
    assert via_folder.qrels == via_irds.qrels
    assert via_folder.fingerprint() == via_irds.fingerprint()
    assert load_dataset("beir/scifact", "test").queries == via_irds.queries


@pytest.mark.slow
def test_scifact_splits_are_disjoint(data_dir: Path) -> None:
    test, train = load_dataset("beir/scifact/test"), load_dataset("beir/scifact/train")
    assert not {q.qid for q in test.queries} & {q.qid for q in train.queries}


@pytest.mark.slow
def test_lookup_of_unknown_docid(data_dir: Path) -> None:
    with pytest.raises(DatasetError, match="no document"):
        load_dataset("cranfield").docs(["1", "no-such-doc"])


@pytest.mark.slow
def test_available_datasets_lists_data_dir(data_dir: Path) -> None:
    entries = {e["id"]: e for e in available_datasets()}
    for dataset_id in ("beir/scifact/test", "beir/scifact/train", "cranfield", "vaswani"):
        assert entries[dataset_id]["source"] in {"data dir", "ir_datasets cache"}
    assert entries["beir/scifact/train"]["queries"] == 809 and entries["vaswani"]["docs"] == 11429
    assert not any(i.startswith("msmarco-passage") for i in entries)  # qrels only: not loadable


def test_unknown_id_suggests_close_matches() -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("beir/scifakt/test")
    message = str(info.value)
    assert "'beir/scifakt/test'" in message and "beir/scifact/test" in message
    assert "corpus.jsonl" in message and "queries=" in message


def test_download_failure_says_not_available_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    irds = ir_datasets_module()

    def no_network(self: object, force: bool = True) -> str:
        raise RuntimeError("All download sources failed", ["simulated: no network"])

    monkeypatch.setattr(irds.util.Download, "path", no_network)
    with pytest.raises(DatasetError, match=r"'beir/arguana' is not available offline.*RANKKIT_DATA_DIR"):
        load_dataset("beir/arguana")


@pytest.fixture
def fake_scifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, beir: SimpleNamespace) -> SimpleNamespace:
    """A private ir_datasets home holding a hand-made ``beir/scifact`` zip (ir_datasets is re-imported)."""
    monkeypatch.delenv("RANKKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))

    corpus = [{"title": "", **doc} for doc in beir.CORPUS]  # ir_datasets' SciFact docs need a title key

    def place(**files: object) -> None:
        prime_beir_folder(beir.make(tmp_path / "scifact", corpus=corpus, **files), overwrite=True)

    return SimpleNamespace(place=place, home=tmp_path / "irds")


def test_ir_datasets_empty_query_names_id_and_qid(fake_scifact: SimpleNamespace) -> None:
    fake_scifact.place(queries=[{"_id": "q1", "text": "ok"}, {"_id": "q2", "text": "x"}, {"_id": "q3", "text": " "}])
    with pytest.raises(FormatError, match=re.escape("beir/scifact/test: query 'q3' has empty text")):
        load_dataset("beir/scifact/test")
    ds = load_dataset("beir/scifact/train")  # q3 is not in the train split
    assert [q.qid for q in ds.queries] == ["q2"] and ds.docs_count() == 5183  # count from ir_datasets metadata
    assert [d.docid for d in ds.docs_iter()] == ["d1", "d2", "d3"]
    assert ir_datasets_module().util.home_path() == fake_scifact.home


def test_ir_datasets_qrels_for_unknown_queries(fake_scifact: SimpleNamespace) -> None:
    fake_scifact.place(queries=[{"_id": "q1", "text": "only one"}], qrels={"test": [("q1", "d1", 1), ("q7", "d2", 1)]})
    with pytest.raises(FormatError, match=r"beir/scifact/test: qrels judge 1 query not in the queries: 'q7'"):
        load_dataset("beir/scifact/test")
