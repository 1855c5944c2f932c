"""Dense vector indexes on FAISS: exact inner product (flat) or HNSW, saved atomically.

A :class:`DenseIndex` holds the docids, the FAISS index and the raw float32
embeddings (kept beside the index so :meth:`DenseIndex.vectors` reconstructs a
document's vector exactly, for reranking). On disk an index is a folder with
``index.faiss``, ``embeddings.npy``, ``docids.json`` and a manifest
(``rankkit-index.json``: kind, dim, count, model, settings, ``complete: true``)
written last. A save writes into a temporary folder beside the target and renames
it into place, so a half-written index is never loaded. Search runs on GPU when
FAISS sees one (``gpu="auto"``) and the index type supports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rankkit.errors import ConfigError, IndexMissingError
from rankkit.trec import atomic_write

log = logging.getLogger(__name__)

MANIFEST = "rankkit-index.json"
FORMAT_VERSION = 1
KINDS = ("flat", "hnsw")
_GPU_MAX_K = 2048  # FAISS GPU k-selection limit


def _use_gpu(gpu: bool | str, kind: str) -> bool:
    """Decide whether to search on GPU; ``gpu=True`` without a usable GPU is an error."""
    if gpu not in (True, False, "auto"):
        raise ConfigError(f"gpu must be True, False or 'auto', got {gpu!r}")
    if gpu is False:
        return False
    num = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if num == 0:
        if gpu is True:
            raise ConfigError("gpu=True but FAISS sees no GPU (install faiss-gpu and a CUDA build)")
        return False
    if kind != "flat":
        if gpu is True:
            raise ConfigError(f"FAISS has no GPU version of a {kind!r} index; use gpu='auto' or index='flat'")
        log.info("%s index stays on CPU (no GPU implementation in FAISS)", kind)
        return False
    return True


def _check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``, else :class:`ConfigError`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        small = isinstance(value, (float, np.number)) or (isinstance(value, int) and value.bit_length() <= 64)
        shown = repr(value)[:80] if small else f"a value of type {type(value).__name__}"
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {shown}")
    return int(value)


class DenseIndex:
    """Docids, their embeddings and a FAISS inner-product index over them.

    Build with :meth:`build` or open a saved one with :meth:`load`; :meth:`search`
    returns the top-k docids per query vector, :meth:`vectors` the stored
    embeddings of given docids. ``model`` and ``settings`` are free metadata kept
    in the manifest (the encoder that produced the vectors and its options).
    """

    def __init__(
        self,
        index: Any,
        docids: Sequence[str],
        embeddings: np.ndarray,
        kind: str,
        *,
        ef_search: int = 128,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
        gpu: bool | str = "auto",
    ) -> None:
        self.index = index
        self.docids: list[str] = list(docids)
        self.embeddings = embeddings
        self.kind = kind
        self.ef_search = _check_int(ef_search, "ef_search", 1)
        self.model = model
        self.settings: dict[str, Any] = dict(settings or {})
        self._rows: dict[str, int] | None = None
        self._search_index = index
        if _use_gpu(gpu, kind):
            log.info("moving the %s index to %d GPU(s)", kind, faiss.get_num_gpus())
            self._search_index = faiss.index_cpu_to_all_gpus(index)

    def __repr__(self) -> str:
        return f"DenseIndex(kind={self.kind!r}, count={len(self)}, dim={self.dim})"

    def __len__(self) -> int:
        return len(self.docids)

    @property
    def dim(self) -> int:
        """Dimension of the vectors."""
        return int(self.index.d)

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        docids: Sequence[str],
        kind: str = "flat",
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 128,
        *,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
        gpu: bool | str = "auto",
    ) -> DenseIndex:
        """Index ``embeddings`` (one row per docid) for inner-product search.

        ``kind="flat"`` is exact (``IndexFlatIP``); ``kind="hnsw"`` is an
        ``IndexHNSWFlat`` with the inner-product metric, ``hnsw_m`` links per node and
        ``ef_construction``; ``ef_search`` is its search breadth (raised to k when
        smaller). Docids must be unique.
        """
        if kind not in KINDS:
            shown = repr(kind[:80]) if isinstance(kind, str) else f"of type {type(kind).__name__}"
            raise ConfigError(f"unknown dense index kind {shown}; choose one of {', '.join(KINDS)}")
        hnsw_m = _check_int(hnsw_m, "hnsw_m", 2)
        ef_construction = _check_int(ef_construction, "ef_construction", 1)
        _check_int(ef_search, "ef_search", 1)
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(docids):
            raise ValueError(f"embeddings of shape {emb.shape} do not match {len(docids)} docids")
        if len(set(docids)) != len(docids):
            raise ValueError("docids must be unique")
        dim = emb.shape[1]
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            index = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(ef_construction)
        index.add(emb)
        params = {"hnsw_m": int(hnsw_m), "ef_construction": int(ef_construction)} if kind == "hnsw" else {}
        return cls(index, docids, emb, kind, ef_search=ef_search, model=model,
                   settings={**params, **dict(settings or {})}, gpu=gpu)

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, list[list[str]]]:
        """Top-``k`` documents by inner product for each query vector.

        Returns ``(scores, docids)``: ``scores`` is a float32 array of shape
        ``(num_queries, min(k, len(self)))`` in rank order and ``docids[i]`` the matching
        docids. Slots FAISS cannot fill (rare with HNSW) are dropped from ``docids[i]``
        and hold ``-inf`` in ``scores``.
        """
        q = np.ascontiguousarray(query_vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.shape[1] != self.dim:
            raise ValueError(f"query vectors have dimension {q.shape[1]}, the index {self.dim}")
        k = min(_check_int(k, "k", 0), len(self))
        if k < 1 or len(q) == 0:
            return np.zeros((len(q), max(k, 0)), dtype=np.float32), [[] for _ in range(len(q))]
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            scores, labels = self.index.search(q, k, params=params)
        else:
            index = self._search_index if k <= _GPU_MAX_K else self.index
            scores, labels = index.search(q, k)
        scores[labels < 0] = -np.inf
        docids = [[self.docids[j] for j in row if j >= 0] for row in labels]
        return scores, docids

    def vectors(self, docids: Sequence[str]) -> np.ndarray:
        """The stored embeddings of ``docids`` (one row each); an unknown docid raises ``KeyError``."""
        if self._rows is None:
            self._rows = {d: i for i, d in enumerate(self.docids)}
        try:
            rows = [self._rows[d] for d in docids]
        except KeyError as exc:
            raise KeyError(f"docid {exc.args[0]!r} is not in the dense index") from None
        return np.asarray(self.embeddings[rows], dtype=np.float32)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to folder ``path`` atomically (replacing a previous copy) and return it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            np.save(tmp / "embeddings.npy", np.asarray(self.embeddings, dtype=np.float32))
            (tmp / "docids.json").write_text(json.dumps(self.docids), encoding="utf-8")
            manifest = {"format": FORMAT_VERSION, "kind": self.kind, "dim": self.dim, "count": len(self),
                        "model": self.model, "ef_search": self.ef_search, "settings": self.settings,
                        "complete": True}
            with atomic_write(tmp / MANIFEST) as fh:  # written last: marks the folder complete
                json.dump(manifest, fh, indent=2)
            old = None
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, old / "index")
            try:
                os.replace(tmp, target)
            except OSError:  # another process saved a complete copy first: keep theirs
                if not self.is_complete(target):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                log.info("%s was saved concurrently by another process; keeping that copy", target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("saved %s to %s", self, target)
        return target

    @staticmethod
    def is_complete(path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` holds a complete saved index (its manifest says ``complete``)."""
        with contextlib.suppress(OSError, ValueError):
            return bool(json.loads((Path(path) / MANIFEST).read_text()).get("complete"))
        return False

    @classmethod
    def load(cls, path: str | os.PathLike[str], gpu: bool | str = "auto", mmap: bool = True) -> DenseIndex:
        """Open a saved index; a missing or incomplete folder raises :class:`IndexMissingError`.

        With ``mmap`` the raw embeddings are memory-mapped rather than read into memory.
        """
        path = Path(path)
        if not path.is_dir():
            raise IndexMissingError(f"no dense index at {path}")
        if not cls.is_complete(path):
            raise IndexMissingError(f"dense index at {path} is incomplete (no complete marker); rebuild it")
        manifest = json.loads((path / MANIFEST).read_text())
        try:
            index = faiss.read_index(str(path / "index.faiss"))
            embeddings = np.load(path / "embeddings.npy", mmap_mode="r" if mmap else None)
            docids = json.loads((path / "docids.json").read_text(encoding="utf-8"))
        except (OSError, RuntimeError, ValueError) as exc:
            raise IndexMissingError(f"dense index at {path} is unreadable ({exc}); rebuild it") from exc
        if not (len(docids) == index.ntotal == embeddings.shape[0] == manifest["count"]):
            raise IndexMissingError(f"dense index at {path} is inconsistent (counts differ); rebuild it")
        return cls(index, docids, embeddings, manifest["kind"], ef_search=manifest.get("ef_search", 128),
                   model=manifest.get("model"), settings=manifest.get("settings"), gpu=gpu)
