"""Fixtures for the data tests: builders of tiny BEIR folders and loose files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

CORPUS = [
    {"_id": "d1", "title": "Alpha", "text": "alpha text"},
    {"_id": "d2", "title": "Beta", "text": "beta text"},
    {"_id": "d3", "text": "gamma text without title"},
]
QUERIES = [
    {"_id": "q1", "text": "first query"},
    {"_id": "q2", "text": "second query"},
    {"_id": "q3", "text": "third query"},
]
QRELS = {"test": [("q1", "d1", 1), ("q3", "d3", 2)], "train": [("q2", "d2", 1)]}


def write_jsonl(path: Path, rows: list[dict] | list[str]) -> Path:
    """Write rows (dicts as JSON, strings verbatim) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_qrels(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    """Write BEIR TSV qrels with header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows), encoding="utf-8")
    return path


def make_beir(
    root: Path,
    corpus: list | None = None,
    queries: list | None = None,
    qrels: dict[str, list[tuple[str, str, int]]] | None = None,
) -> Path:
    """A BEIR folder under ``root`` with the given (default: valid) files."""
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "corpus.jsonl", CORPUS if corpus is None else corpus)
    write_jsonl(root / "queries.jsonl", QUERIES if queries is None else queries)
    for split, rows in (QRELS if qrels is None else qrels).items():
        write_qrels(root / "qrels" / f"{split}.tsv", rows)
    return root


@pytest.fixture
def beir() -> SimpleNamespace:
    """The builders above, as a fixture (tests cannot import conftest under every import mode)."""
    return SimpleNamespace(
        make=make_beir, write_jsonl=write_jsonl, write_qrels=write_qrels, CORPUS=CORPUS, QUERIES=QUERIES, QRELS=QRELS
    )
