"""Load a local BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

This is the layout of the official BEIR zips (Thakur et al., 2021). As in BEIR, a
split keeps only the queries judged in that split's qrels. The corpus is streamed
from ``corpus.jsonl`` on every pass and only held in memory if documents are looked
up by id.

Reading is strict (see ``docs/file-formats.md``): ids must be JSON strings or integers
that a TREC run can carry, texts must be strings, and a query id, document id or
judgement that appears twice is an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from rankkit import trec
from rankkit.data._io import (
    check_qrels_queries,
    first_content_line,
    get_id,
    get_text,
    iter_jsonl,
    json_document,
    unique_docs,
)
from rankkit.data.dataset import Dataset
from rankkit.errors import DatasetError, FormatError
from rankkit.types import Document, Qrels, Query

logger = logging.getLogger(__name__)

__all__ = ["beir_splits", "is_beir_folder", "iter_beir_corpus", "load_beir_folder"]


#: The BEIR benchmark's datasets (Thakur et al., NeurIPS 2021 Datasets and Benchmarks), CQADupStack's
#: forums included. Their runs follow BEIR's convention of dropping a hit whose docid equals the
#: query id (Pyserini's BEIR regressions search with ``--remove-query``), so a dataset loaded under
#: one of these names gets ``Dataset.remove_query = True``; any other folder does not.
BEIR_DATASETS = frozenset({
    "arguana", "climate-fever", "cqadupstack", "dbpedia-entity", "fever", "fiqa", "hotpotqa", "msmarco",
    "nfcorpus", "nq", "quora", "scidocs", "scifact", "signal1m", "trec-covid", "trec-news", "robust04",
    "webis-touche2020", "bioasq",
    *(f"cqadupstack/{forum}" for forum in ("android", "english", "gaming", "gis", "mathematica", "physics",
                                           "programmers", "stats", "tex", "unix", "webmasters", "wordpress")),
})


def follows_beir_convention(name: str) -> bool:
    """Whether a BEIR dataset name (``scifact``, ``beir/scifact/test``, ``cqadupstack/android``) is one of BEIR's."""
    parts = name.strip("/").split("/")
    if parts and parts[0] == "beir":
        parts = parts[1:]
    return bool(parts) and (parts[0] in BEIR_DATASETS or "/".join(parts[:2]) in BEIR_DATASETS)


def is_beir_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding ``corpus.jsonl`` (the mark of a BEIR folder)."""
    return (Path(path).expanduser() / "corpus.jsonl").is_file()


def beir_splits(path: str | os.PathLike[str]) -> list[str]:
    """The qrels splits of a BEIR folder (names of ``qrels/*.tsv``), sorted."""
    qrels_dir = Path(path).expanduser() / "qrels"
    return sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []


def iter_beir_corpus(path: str | os.PathLike[str]) -> Iterator[Document]:
    """Stream the documents of a BEIR ``corpus.jsonl`` (``_id``, optional ``title``, ``text``).

    A malformed line, a missing ``_id``/``text`` key, a value of the wrong type, an id
    TREC cannot carry, or an ``_id`` that appears twice (checked when the stream ends)
    raises :class:`FormatError` with the file and line.
    """
    path = Path(path)
    return unique_docs(_corpus(path), path, lambda: _corpus(path))


def _corpus(path: Path) -> Iterator[tuple[int, Document]]:
    for lineno, obj in iter_jsonl(path):
        yield lineno, json_document(obj, path, lineno)


def _read_queries(path: Path) -> dict[str, tuple[str, int]]:
    queries: dict[str, tuple[str, int]] = {}
    for lineno, obj in iter_jsonl(path):
        qid = get_id(obj, ["_id"], path, lineno, "query id")
        text = get_text(obj, ["text"], path, lineno)
        if qid in queries:
            raise FormatError(f"query {qid!r} appears twice (first on line {queries[qid][1]})", path, lineno)
        queries[qid] = (text, lineno)
    return queries


def load_beir_folder(path: str | os.PathLike[str], split: str = "test") -> Dataset:
    """Load one split of a local BEIR folder as a :class:`Dataset`.

    Queries are those of ``queries.jsonl`` judged in ``qrels/<split>.tsv``, in file
    order. Raises :class:`DatasetError` for a missing folder or file (naming the path)
    or an unknown split (listing the available ones), and :class:`FormatError` with
    file and line for malformed JSON, a missing ``_id``/``text`` key, an empty query
    text, a query id or judgement given twice, an empty qrels or corpus file, or qrels
    that judge a query absent from ``queries.jsonl``.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"BEIR folder not found: {folder}")
    corpus, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    for required in (corpus, queries_path):
        if not required.is_file():
            raise DatasetError(
                f"BEIR folder {folder} has no {required.name} (expected corpus.jsonl, queries.jsonl, qrels/<split>.tsv)"
            )
    splits = beir_splits(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        avail = ", ".join(splits) if splits else "none"
        raise DatasetError(
            f"BEIR folder {folder} has no split {split!r} ({qrels_path} missing); available splits: {avail}"
        )

    qrels = trec.read_qrels(qrels_path)
    if not qrels:
        raise FormatError("no judgements found (the qrels file is empty)", qrels_path)
    if not first_content_line(corpus):
        raise FormatError("no documents found (the corpus file is empty)", corpus)
    all_queries = _read_queries(queries_path)
    check_qrels_queries(qrels, all_queries, qrels_path)
    queries: list[Query] = []
    for qid, (text, lineno) in all_queries.items():
        if qid not in qrels:
            continue
        if not text.strip():
            raise FormatError(f"query {qid!r} has empty text", queries_path, lineno)
        queries.append(Query(qid, text))
    judged = Qrels(qrels)
    logger.info("loaded BEIR folder %s split %s: %d queries", folder, split, len(queries))
    return Dataset(f"{folder.name}/{split}", lambda: iter_beir_corpus(corpus), queries, judged,
                   remove_query=follows_beir_convention(folder.name))
