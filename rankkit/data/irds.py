"""ir_datasets adapter: load any ir_datasets id as a :class:`Dataset`, offline when primed.

ir_datasets bakes ``$IR_DATASETS_HOME`` into its dataset definitions when it is first
imported. :func:`ir_datasets_module` therefore sets the variable from
:func:`rankkit.settings.ir_datasets_home` before importing it, and re-imports it if an
earlier import used another home (e.g. a test session that switched caches). Its
temporary folder (``IR_DATASETS_TMP``) is kept inside the cache unless the user set
one, and its INFO logging is lowered to WARNING.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from rankkit import settings
from rankkit.data.beir import follows_beir_convention
from rankkit.data.dataset import Dataset
from rankkit.data.prime import prime
from rankkit.errors import DatasetError, FormatError
from rankkit.types import Document, Qrels, Query, as_queries

logger = logging.getLogger(__name__)

__all__ = ["ir_datasets_module", "load_irds", "prime", "suggest_ids"]

T = TypeVar("T")
_quieted: set[int] = set()
_our_tmp: str | None = None


def _baked_home(mod: ModuleType) -> Path | None:
    """The home an already-imported ir_datasets was initialised with (via a known dataset)."""
    try:
        docs = mod.registry["vaswani"].docs_handler().docs_path(force=False)
        return Path(docs).parent.parent
    except Exception:  # noqa: BLE001 - any layout change: assume it matches
        return None


def ir_datasets_module() -> ModuleType:
    """Import ir_datasets so that it uses rankkit's current ``IR_DATASETS_HOME``.

    Sets ``IR_DATASETS_HOME`` (and ``IR_DATASETS_TMP`` inside it unless the user set
    one) before the import; if ir_datasets was already imported with a different
    home, its modules are dropped and re-imported so the right cache is used.
    """
    global _our_tmp
    home = settings.ir_datasets_home()
    os.environ["IR_DATASETS_HOME"] = str(home)
    if os.environ.get("IR_DATASETS_TMP") in (None, "", _our_tmp):
        _our_tmp = str(home / "tmp")
        os.environ["IR_DATASETS_TMP"] = _our_tmp
    mod = sys.modules.get("ir_datasets")
    if mod is not None:
        baked = _baked_home(mod)
        if baked is not None and baked.resolve() != home.resolve():
            logger.warning("ir_datasets was imported with IR_DATASETS_HOME=%s; re-importing it for %s", baked, home)
            for key in [k for k in sys.modules if k == "ir_datasets" or k.startswith("ir_datasets.")]:
                del sys.modules[key]
            mod = None
    if mod is None:
        mod = importlib.import_module("ir_datasets")
    if id(mod) not in _quieted:
        irds_logger = mod.log.easy().logger()  # creates and caches ir_datasets' logger (level INFO)
        if irds_logger.level < logging.WARNING:
            irds_logger.setLevel(logging.WARNING)
        _quieted.add(id(mod))
    return mod


def suggest_ids(dataset_id: str, n: int = 5) -> list[str]:
    """Registered ir_datasets ids close to ``dataset_id`` (difflib), best first."""
    ids = list(ir_datasets_module().registry)
    return difflib.get_close_matches(dataset_id, ids, n=n, cutoff=0.6)


def _unknown(dataset_id: str) -> DatasetError:
    close = suggest_ids(dataset_id)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return DatasetError(
        f"unknown dataset {dataset_id!r}: not an ir_datasets id nor an existing path.{hint} "
        "To load local files, pass a BEIR folder (with corpus.jsonl) or queries=/qrels=/corpus= files."
    )


def _is_download_error(exc: BaseException) -> bool:
    if isinstance(exc, RuntimeError) and "download" in str(exc).lower():
        return True  # ir_datasets: RuntimeError('All download sources failed', errors)
    if isinstance(exc, FileNotFoundError):
        return True  # LocalDownload: a file the user must place by hand is absent
    try:
        import requests
    except ImportError:  # pragma: no cover - ir_datasets depends on requests
        return False
    return isinstance(exc, requests.RequestException)


def _offline(dataset_id: str, exc: BaseException) -> DatasetError:
    data = settings.data_dir()
    where = f"RANKKIT_DATA_DIR={data} has no copy of it" if data else "RANKKIT_DATA_DIR is not set"
    return DatasetError(
        f"dataset {dataset_id!r} is not available offline and its download failed ({where}). "
        f"Set RANKKIT_DATA_DIR to a folder holding it (e.g. beir/<name>/ or classic/<name>/), "
        f"or place its source files under {settings.ir_datasets_home()}. Cause: {exc}"
    )


def _guard(dataset_id: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (DatasetError, FormatError):
        raise
    except Exception as exc:
        if _is_download_error(exc):
            raise _offline(dataset_id, exc) from exc
        raise


def _doc(raw: Any) -> Document:
    text = getattr(raw, "text", None)
    if text is None:
        text = getattr(raw, "body", None)
    if text is None:
        text = raw.default_text()
    return Document(str(raw.doc_id), str(text), str(getattr(raw, "title", "") or ""))


def _query_text(raw: Any) -> str:
    text = getattr(raw, "text", None)
    return str(text) if text is not None else str(raw.default_text())


def load_irds(dataset_id: str) -> Dataset:
    """Load an ir_datasets id (e.g. ``beir/scifact/test``, ``cranfield``) as a :class:`Dataset`.

    Primes the ir_datasets cache from ``RANKKIT_DATA_DIR`` first (see
    :mod:`rankkit.data.prime`). Queries and qrels are read now; documents stream from
    ir_datasets, and lookups by id go through its docstore. Raises
    :class:`DatasetError` for an unknown id (with close matches) or a collection that
    is neither primed nor downloadable, and :class:`FormatError` for an empty query
    text, a query id or (qid, docid) judgement given twice, or qrels that judge queries
    the dataset does not have.
    """
    irds = ir_datasets_module()
    try:
        ds = irds.registry[dataset_id]
    except KeyError:
        raise _unknown(dataset_id) from None
    prime(dataset_id)
    if not ds.has_queries():
        raise DatasetError(f"ir_datasets id {dataset_id!r} has no queries; pick a sub-dataset (e.g. {dataset_id}/test)")

    def read_queries() -> list[Query]:
        return as_queries(((str(q.query_id), _query_text(q)) for q in ds.queries_iter()), source=dataset_id)

    queries = _guard(dataset_id, read_queries)
    seen: set[str] = set()
    for query in queries:
        if query.qid in seen:
            raise FormatError(f"query {query.qid!r} appears twice", dataset_id)
        seen.add(query.qid)
    qrels = Qrels()
    if ds.has_qrels():
        raw: dict[str, dict[str, int]] = {}

        def read() -> None:
            for qrel in ds.qrels_iter():
                docs = raw.setdefault(str(qrel.query_id), {})
                docid = str(qrel.doc_id)
                if docid in docs:
                    raise FormatError(f"query {str(qrel.query_id)!r} judges docid {docid!r} twice", dataset_id)
                docs[docid] = int(qrel.relevance)

        _guard(dataset_id, read)
        qrels = Qrels(raw)
        qrels.check_queries((q.qid for q in queries), source=dataset_id)

    if not ds.has_docs():
        logger.warning("ir_datasets id %r has no documents", dataset_id)
        return Dataset(dataset_id, lambda: iter(()), queries, qrels, docs_count=0,
                       remove_query=follows_beir_convention(dataset_id) if dataset_id.startswith("beir/") else False)

    def docs() -> Iterator[Document]:
        try:
            for raw_doc in ds.docs_iter():
                yield _doc(raw_doc)
        except Exception as exc:
            if _is_download_error(exc):
                raise _offline(dataset_id, exc) from exc
            raise

    def lookup(docids: Sequence[str]) -> dict[str, Document]:
        store = _guard(dataset_id, ds.docs_store)
        found = _guard(dataset_id, lambda: store.get_many(list(docids)))
        return {str(k): _doc(v) for k, v in found.items()}

    count = _guard(dataset_id, ds.docs_count)
    logger.info("loaded %s: %s docs, %d queries, %d judgements", dataset_id, count, len(queries), qrels.num_judgements)
    return Dataset(dataset_id, docs, queries, qrels, docs_count=count, lookup=lookup,
                   remove_query=follows_beir_convention(dataset_id) if dataset_id.startswith("beir/") else False)
