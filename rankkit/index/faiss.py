"""Dense vector indexes on FAISS: exact (flat), HNSW, IVF-Flat and IVF-PQ, saved atomically.

A :class:`DenseIndex` holds the docids, the FAISS index and the raw float32
embeddings (kept beside the index so :meth:`DenseIndex.vectors` reconstructs a
document's vector exactly, for reranking, and so recall can be measured against
exact search). Every kind uses the inner-product metric:

- ``flat``: ``IndexFlatIP``, exact;
- ``hnsw``: ``IndexHNSWFlat`` (``hnsw_m`` links per node, ``ef_construction``;
  ``ef_search`` at search time);
- ``ivf_flat``: ``IndexIVFFlat`` over an ``IndexFlatIP`` coarse quantizer with
  ``nlist`` lists, ``nprobe`` of them scanned per query;
- ``ivf_pq``: ``IndexIVFPQ``, the same with the vectors product-quantised into
  ``pq_m`` sub-quantizer codes of ``pq_nbits`` bits (``pq_m`` divides the dimension).

IVF kinds need k-means training: :meth:`DenseIndex.build` does it (create, train on a
seeded sample of ``train_size`` vectors, add); corpora built in pieces use
:meth:`DenseIndex.create`, :meth:`DenseIndex.train` and :meth:`DenseIndex.add`.
Building an approximate index logs its recall@100 against exact search
(:meth:`DenseIndex.measure_recall`) and keeps it in ``settings["recall_at_k"]``.
``nprobe`` and ``ef_search`` are search-time settings: they can be changed on a built
or loaded index without rebuilding.

On disk an index is a folder with ``index.faiss``, ``embeddings.npy``, ``docids.json``
and a manifest (``rankkit-index.json``: format, kind, dim, count, model, ``ef_search``,
``nprobe`` (IVF only), settings, ``complete: true``) written last. A save writes into a
temporary folder beside the target and renames it into place, so a half-written index
is never loaded. Manifests of format 1 written before the IVF kinds existed load
unchanged (the format only gained optional keys).

With ``gpu="auto"`` flat and IVF indexes are searched on the GPU(s) when FAISS sees
one (HNSW has no FAISS GPU version and stays on the CPU; an IVF-PQ layout the GPU code
refuses falls back to the CPU with a log line); one INFO line always says where the
index is searched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rankkit.errors import ConfigError, IndexMissingError, IndexNotTrainedError
from rankkit.index.faiss_params import (
    APPROXIMATE_KINDS,
    DEFAULT_NPROBE,
    GPU_MAX_K,
    IVF_KINDS,
    KINDS,
    MIN_POINTS_PER_CENTROID,
    RECALL_K,
    RECALL_SAMPLE,
    TRAIN_POINTS_PER_CENTROID,
    auto_nlist,
    auto_pq_m,
    check_int,
    check_kind,
    check_optional_int,
    check_params,
    gpu_plan,
)
from rankkit.trec import atomic_write

log = logging.getLogger(__name__)

MANIFEST = "rankkit-index.json"
FORMAT_VERSION = 1
class DenseIndex:
    """Docids, their embeddings and a FAISS inner-product index over them.

    Build with :meth:`build` (one call), or :meth:`create` + :meth:`train` + :meth:`add`
    (in pieces), or open a saved one with :meth:`load`; :meth:`search` returns the
    top-k docids per query vector, :meth:`vectors` the stored embeddings of given
    docids, :meth:`measure_recall` the recall of an approximate index against exact
    search. ``model`` and ``settings`` are free metadata kept in the manifest (the
    encoder that produced the vectors and its options; the build parameters and the
    measured recall are added to ``settings``).
    """

    def __init__(
        self,
        index: Any,
        docids: Sequence[str],
        embeddings: np.ndarray,
        kind: str,
        *,
        ef_search: int = 128,
        nprobe: int | None = None,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
        gpu: bool | str = "auto",
    ) -> None:
        self.kind = check_kind(kind)
        self.index = index
        self.docids: list[str] = list(docids)
        self._parts: list[np.ndarray] = [embeddings]
        self.ef_search = check_int(ef_search, "ef_search", 1)
        self.model = model
        self.settings: dict[str, Any] = dict(settings or {})
        self.gpu = gpu
        self._gpu_wanted, self._cpu_reason = gpu_plan(gpu, self.kind)
        self._rows: dict[str, int] | None = None
        self._search_index: Any = None  # the index searched (a GPU copy or self.index); None: not prepared
        self._train_size: int | None = self.settings.get("train_size")
        self._seed: int = int(self.settings.get("seed", 0))
        self._nprobe: int | None = None
        if self.kind in IVF_KINDS:
            self.nprobe = min(DEFAULT_NPROBE, self.nlist) if nprobe is None else nprobe
        if self.docids and self.is_trained:
            self._prepare_search()

    def __repr__(self) -> str:
        return f"DenseIndex(kind={self.kind!r}, count={len(self)}, dim={self.dim})"

    def __len__(self) -> int:
        return len(self.docids)

    @property
    def dim(self) -> int:
        """Dimension of the vectors."""
        return int(self.index.d)

    @property
    def embeddings(self) -> np.ndarray:
        """The stored float32 embeddings, one row per docid (pieces added apart are joined on first access)."""
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0]

    @property
    def is_trained(self) -> bool:
        """Whether the index can take vectors (always true for flat and HNSW; IVF after :meth:`train`)."""
        return bool(self.index.is_trained)

    @property
    def nlist(self) -> int | None:
        """Number of IVF lists (``None`` for other kinds)."""
        return int(self.index.nlist) if self.kind in IVF_KINDS else None

    @property
    def nprobe(self) -> int | None:
        """IVF lists scanned per query (``None`` for other kinds); settable, at most ``nlist``."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind not in IVF_KINDS:
            raise ConfigError(f"nprobe applies to IVF indexes only, not to a {self.kind!r} index")
        value = check_int(value, "nprobe", 1)
        if value > self.nlist:  # type: ignore[operator]
            raise ConfigError(f"nprobe={value} is larger than nlist={self.nlist}: an IVF search cannot scan more "
                              "lists than the index has; lower nprobe or raise nlist")
        self._nprobe = value
        self.index.nprobe = value
        if self._search_index is not None and self._search_index is not self.index:
            try:
                self._set_nprobe(self._search_index, value)
            except RuntimeError:
                self._search_index = None  # copied to the GPU again on the next search

    @staticmethod
    def _set_nprobe(index: Any, value: int) -> None:
        space = faiss.GpuParameterSpace() if hasattr(faiss, "GpuParameterSpace") else faiss.ParameterSpace()
        space.set_index_parameter(index, "nprobe", value)

    # --- building -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        dim: int,
        kind: str = "flat",
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        pq_m: int | None = None,
        pq_nbits: int = 8,
        train_size: int | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 128,
        seed: int = 0,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
        gpu: bool | str = "auto",
    ) -> DenseIndex:
        """An empty index of ``kind`` for ``dim``-dimensional vectors, to fill with :meth:`train` and :meth:`add`.

        IVF kinds need ``nlist`` here (only :meth:`build`, which knows the corpus size,
        chooses it); ``nprobe`` defaults to ``min(32, nlist)``; ``pq_m`` to the divisor of
        ``dim`` nearest ``dim / 8``; ``train_size`` (vectors k-means trains on, sampled
        with ``seed`` from what :meth:`train` gets) to ``40 * nlist`` (for ``ivf_pq`` at
        least ``40 * 2 ** pq_nbits``). HNSW takes ``hnsw_m`` and ``ef_construction``;
        ``ef_search`` is its search breadth. Flat and HNSW need no training. The
        parameters are checked (:func:`check_params`) before anything is allocated.
        """
        dim = check_int(dim, "dim", 1)
        p = check_params(kind, dim, nlist=nlist, nprobe=nprobe, pq_m=pq_m, pq_nbits=pq_nbits, train_size=train_size,
                         hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search, seed=seed)
        gpu_plan(gpu, kind)
        if kind in IVF_KINDS and p["nlist"] is None:
            raise ConfigError(f"nlist is required to create an {kind} index (DenseIndex.build chooses about "
                              "4 * sqrt(n) when it is not given)")
        params: dict[str, Any]
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
            params = {}
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, p["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p["ef_construction"]
            params = {"hnsw_m": p["hnsw_m"], "ef_construction": p["ef_construction"]}
        else:
            quantizer = faiss.IndexFlatIP(dim)
            params = {"nlist": p["nlist"], "train_size": p["train_size"], "seed": p["seed"]}
            if kind == "ivf_flat":
                index = faiss.IndexIVFFlat(quantizer, dim, p["nlist"], faiss.METRIC_INNER_PRODUCT)
            else:
                if p["pq_m"] is None:
                    p["pq_m"] = auto_pq_m(dim)
                    log.info("ivf_pq: pq_m=%d sub-quantizers for dimension %d", p["pq_m"], dim)
                index = faiss.IndexIVFPQ(quantizer, dim, p["nlist"], p["pq_m"], p["pq_nbits"],
                                         faiss.METRIC_INNER_PRODUCT)
                index.pq.cp.seed = p["seed"]
                index.pq.cp.min_points_per_centroid = 1  # too few points is logged by train(), not printed by FAISS
                params.update(pq_m=p["pq_m"], pq_nbits=p["pq_nbits"])
            index.cp.seed = p["seed"]
            index.cp.min_points_per_centroid = 1
        return cls(index, [], np.zeros((0, dim), dtype=np.float32), kind, ef_search=p["ef_search"],
                   nprobe=p["nprobe"], model=model, settings={**params, **dict(settings or {})}, gpu=gpu)

    def _matrix(self, vectors: np.ndarray, what: str) -> np.ndarray:
        """``vectors`` as a C-contiguous float32 matrix of this index's dimension (else :class:`ConfigError`)."""
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"{what} of shape {x.shape} do not match the index dimension {self.dim} "
                              "(expected a 2-d array, one row per vector)")
        return x

    def _default_train_size(self) -> int:
        size = TRAIN_POINTS_PER_CENTROID * int(self.nlist or 1)
        if self.kind == "ivf_pq":
            size = max(size, TRAIN_POINTS_PER_CENTROID * 2 ** int(self.index.pq.nbits))
        return size

    def train(self, sample_vectors: np.ndarray) -> DenseIndex:
        """Train an IVF index (k-means for the lists, and the PQ codebooks for ``ivf_pq``); returns ``self``.

        ``sample_vectors`` should be representative of the corpus; when it has more than
        ``train_size`` rows, a seeded sample of ``train_size`` of them is used (so passing
        the whole corpus is fine). Fewer than 39 vectors per list (or per PQ centroid) is
        logged as a warning, as FAISS does; fewer than ``nlist`` (or ``2 ** pq_nbits``) is a
        :class:`ConfigError`, and so is training twice. Flat and HNSW need no training:
        the call only checks the shape.
        """
        x = np.asarray(sample_vectors)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"sample_vectors of shape {x.shape} do not match the index dimension {self.dim}")
        if self.kind not in IVF_KINDS:
            log.debug("a %s index needs no training", self.kind)
            return self
        if self.is_trained:
            raise ConfigError(f"the {self.kind} index is already trained; create a new index to train it again")
        nlist = int(self.nlist)  # type: ignore[arg-type]
        ksub = 2 ** int(self.index.pq.nbits) if self.kind == "ivf_pq" else 0
        need = max(nlist, ksub)
        what = f"nlist={nlist}" if need == nlist else f"2**pq_nbits={ksub} (PQ centroids per sub-quantizer)"
        if len(x) < need:
            raise ConfigError(f"training an {self.kind} index needs at least {need} vectors ({what}), got {len(x)}; "
                              "lower nlist / pq_nbits or pass more vectors")
        size = min(len(x), self._train_size or self._default_train_size())
        if size < need:
            raise ConfigError(f"train_size={self._train_size} is smaller than {what}: raise train_size")
        if size < len(x):
            rows = np.sort(np.random.default_rng(self._seed).choice(len(x), size, replace=False))
            x = x[rows]
        x = np.ascontiguousarray(x, dtype=np.float32)
        for centroids, what in ((nlist, f"nlist={nlist} lists"), (ksub, f"{ksub} PQ centroids")):
            if centroids and size < MIN_POINTS_PER_CENTROID * centroids:
                log.warning("training the %s index on %d vectors for %s: FAISS advises at least %d "
                            "(39 per centroid); quality may suffer", self.kind, size, what,
                            MIN_POINTS_PER_CENTROID * centroids)
        start = time.perf_counter()
        self.index.train(x)
        self.settings["trained_on"] = size
        log.info("trained the %s index (nlist=%d) on %d vectors in %.1f s", self.kind, nlist, size,
                 time.perf_counter() - start)
        self._search_index = None
        if self.kind == "ivf_pq" and self._gpu_wanted:
            self._try_gpu()  # an IVF-PQ layout the GPU refuses is known now, before vectors are added
        return self

    def add(self, docids: Sequence[str], vectors: np.ndarray) -> None:
        """Add ``vectors`` (one row per docid) to the index; may be called many times (shards, chunks).

        Raises :class:`~rankkit.errors.IndexNotTrainedError` for an IVF index not yet
        trained, and :class:`ConfigError` for a shape mismatch or a docid already in the
        index (or repeated within ``docids``), before anything is added.
        """
        ids = list(docids)
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(ids):
            raise ConfigError(f"embeddings of shape {x.shape} do not match {len(ids)} docids")
        x = self._matrix(x, "embeddings")
        self._require_trained("add vectors to")
        rows = self._row_map()
        if len(set(ids)) != len(ids) or any(d in rows for d in ids):
            seen: set[str] = set()
            dups: list[str] = []
            for d in ids:
                if d in rows or d in seen:
                    dups.append(d)
                seen.add(d)
            raise ConfigError(f"docids must be unique: {len(dups)} docid(s) of this add are already in the index "
                              f"or repeated within it, e.g. {str(dups[0])[:80]!r}")
        if not ids:
            return
        self.index.add(x)
        start = len(self.docids)
        rows.update((d, start + i) for i, d in enumerate(ids))
        self.docids.extend(ids)
        self._parts = [p for p in self._parts if len(p)] + [x]
        self._search_index = None

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
        nlist: int | None = None,
        nprobe: int | None = None,
        pq_m: int | None = None,
        pq_nbits: int = 8,
        train_size: int | None = None,
        seed: int = 0,
        recall_k: int = RECALL_K,
        recall_sample: int = RECALL_SAMPLE,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
        gpu: bool | str = "auto",
    ) -> DenseIndex:
        """Index ``embeddings`` (one row per docid) for inner-product search in one call.

        :meth:`create` + :meth:`train` (on a seeded sample of the embeddings) + :meth:`add`
        (see :meth:`create` for the kinds and parameters). ``nlist`` defaults to about
        ``4 * sqrt(n)`` (:func:`auto_nlist`). For an approximate kind the recall@``recall_k``
        against exact search is then measured on ``recall_sample`` stored vectors
        (:meth:`measure_recall`; 0 skips it), logged and kept in ``settings``.
        Docids must be unique.
        """
        p = check_params(kind, None, nlist=nlist, nprobe=nprobe, pq_m=pq_m, pq_nbits=pq_nbits,
                         train_size=train_size, hnsw_m=hnsw_m, ef_construction=ef_construction,
                         ef_search=ef_search, seed=seed)
        recall_k = check_int(recall_k, "recall_k", 1)
        recall_sample = check_int(recall_sample, "recall_sample", 0)
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(docids):
            raise ConfigError(f"embeddings of shape {emb.shape} do not match {len(docids)} docids")
        if len(set(docids)) != len(docids):
            raise ConfigError(f"docids must be unique ({len(docids) - len(set(docids))} repeated)")
        if kind in IVF_KINDS and p["nlist"] is None:
            p["nlist"] = auto_nlist(len(emb))
            if p["nprobe"] is not None and p["nprobe"] > p["nlist"]:
                raise ConfigError(f"nprobe={p['nprobe']} is larger than nlist={p['nlist']} (chosen as about "
                                  f"4 * sqrt({len(emb)})): lower nprobe or give nlist")
            log.info("%s: nlist=%d for %d vectors", kind, p["nlist"], len(emb))
        p.pop("kind")
        index = cls.create(emb.shape[1], kind, **p, model=model, settings=settings, gpu=gpu)
        index.train(emb)
        start = time.perf_counter()
        index.add(docids, emb)
        log.info("added %d vectors to the %s index in %.1f s", len(emb), kind, time.perf_counter() - start)
        if kind in APPROXIMATE_KINDS and recall_sample and len(index):
            index.measure_recall(k=recall_k, sample=recall_sample)
        if len(index) and index._search_index is None:
            index._prepare_search()
        return index

    # --- searching ------------------------------------------------------------------------

    def _require_trained(self, action: str) -> None:
        if not self.is_trained:
            raise IndexNotTrainedError(f"cannot {action} the {self.kind} index before it is trained: call "
                                       f"train(sample_vectors) first (or build it with DenseIndex.build)")

    def _row_map(self) -> dict[str, int]:
        if self._rows is None:
            self._rows = {d: i for i, d in enumerate(self.docids)}
        return self._rows

    def _try_gpu(self) -> Any:
        """A GPU copy of the index, or ``None`` when FAISS refuses it under ``gpu='auto'`` (logged)."""
        if self.kind in IVF_KINDS:
            self.index.nprobe = self._nprobe  # the GPU copy takes nprobe from the CPU index
        try:
            copy = faiss.index_cpu_to_all_gpus(self.index)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
            if self.gpu is True or self.gpu is np.True_:
                raise ConfigError(f"gpu=True but FAISS cannot put this {self.kind} index on the GPU ({reason}); "
                                  "use gpu='auto' to search it on the CPU, or GPU-supported settings "
                                  "(for ivf_pq: pq_nbits=8 and a pq_m FAISS GPU supports)") from exc
            self._gpu_wanted, self._cpu_reason = False, f"FAISS cannot put it on the GPU: {reason}"
            log.info("FAISS cannot put the %s index on the GPU (%s); falling back to the CPU", self.kind, reason)
            return None
        if self.kind in IVF_KINDS:  # and is told again, in case a FAISS version does not copy it
            with contextlib.suppress(RuntimeError, AttributeError):
                self._set_nprobe(copy, self._nprobe)  # type: ignore[arg-type]
        return copy

    def _prepare_search(self) -> None:
        """Choose what is searched (a GPU copy, or the CPU index) and log it."""
        target = self._try_gpu() if self._gpu_wanted else None
        if target is None:
            self._search_index = self.index
            log.info("searching the %s index on CPU (%s)", self.kind, self._cpu_reason)
        else:
            self._search_index = target
            log.info("searching the %s index on %d GPU(s)", self.kind, faiss.get_num_gpus())

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, list[list[str]]]:
        """Top-``k`` documents by inner product for each query vector.

        Returns ``(scores, docids)``: ``scores`` is a float32 array of shape
        ``(num_queries, min(k, len(self)))`` in rank order and ``docids[i]`` the matching
        docids. Slots FAISS cannot fill (HNSW, or IVF when the ``nprobe`` lists scanned
        hold fewer than k vectors) are dropped from ``docids[i]`` and hold ``-inf`` in
        ``scores``. An IVF index not yet trained raises
        :class:`~rankkit.errors.IndexNotTrainedError`.
        """
        q = np.ascontiguousarray(query_vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ConfigError(f"query vectors have dimension {q.shape[-1] if q.ndim else 0}, the index {self.dim}")
        k = min(check_int(k, "k", 0), len(self))
        self._require_trained("search")
        if k < 1 or len(q) == 0:
            return np.zeros((len(q), max(k, 0)), dtype=np.float32), [[] for _ in range(len(q))]
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            scores, labels = self.index.search(q, k, params=params)
        else:
            if self._search_index is None:
                self._prepare_search()
            index = self._search_index
            if index is not self.index and (k > GPU_MAX_K or (self._nprobe or 0) > GPU_MAX_K):
                index = self.index  # beyond the GPU's k-selection limit
            scores, labels = index.search(q, k)
        scores[labels < 0] = -np.inf
        docids = [[self.docids[j] for j in row if j >= 0] for row in labels]
        return scores, docids

    def measure_recall(
        self,
        queries: np.ndarray | None = None,
        k: int = RECALL_K,
        sample: int = RECALL_SAMPLE,
        seed: int = 0,
    ) -> float:
        """Recall@``k`` of this index's search against exact inner-product search over the stored embeddings.

        The query vectors are ``queries`` when given (at most ``sample`` of them, a seeded
        sample when there are more), else a seeded sample of ``sample`` stored vectors
        (documents as queries: each finds itself, so this reads slightly higher than
        real queries would; pass encoded queries when you have them). Exact neighbours
        come from ``faiss.knn`` over the stored embeddings (no second index is built),
        so the cost is bounded by ``sample * len(self)`` inner products. Recall is the
        mean over queries of ``|approximate top k ∩ exact top k| / k`` (``k`` capped at the
        index size); the search uses the current ``nprobe`` / ``ef_search`` and device.
        The value is logged and kept in ``settings["recall_at_k"]`` (with k, the query
        count and source, and the search parameters). An exact (flat) index gives 1.0.
        """
        k = check_int(k, "k", 1)
        sample = check_int(sample, "sample", 1)
        self._require_trained("measure the recall of")
        if not len(self):
            raise ConfigError(f"cannot measure the recall of an empty {self.kind} index")
        rng = np.random.default_rng(seed)
        if queries is None:
            n = len(self)
            rows = np.sort(rng.choice(n, min(sample, n), replace=False))
            q = np.ascontiguousarray(self.embeddings[rows], dtype=np.float32)
            source = "sample of stored vectors"
        else:
            q = self._matrix(np.atleast_2d(np.asarray(queries)), "queries")
            if len(q) > sample:
                q = q[np.sort(rng.choice(len(q), sample, replace=False))]
            source = "given queries"
        if not len(q):
            raise ConfigError("measure_recall needs at least one query vector")
        k = min(k, len(self))
        _, exact = faiss.knn(q, np.ascontiguousarray(self.embeddings, dtype=np.float32), k,
                             metric=faiss.METRIC_INNER_PRODUCT)
        _, found = self.search(q, k)
        recall = float(np.mean([len({self.docids[j] for j in e if j >= 0} & set(f)) / k
                                for e, f in zip(exact, found)]))
        search = {"nprobe": self._nprobe} if self.kind in IVF_KINDS else (
            {"ef_search": self.ef_search} if self.kind == "hnsw" else {})
        self.settings["recall_at_k"] = {"k": k, "recall": round(recall, 6), "queries": len(q), "source": source,
                                        **search}
        shown = ", ".join(f"{key}={value}" for key, value in search.items())
        log.info("%s recall@%d vs flat: %.3f on %d %s%s", self.kind, k, recall, len(q),
                 "sample queries" if queries is None else "given queries", f" ({shown})" if shown else "")
        return recall

    def vectors(self, docids: Sequence[str]) -> np.ndarray:
        """The stored embeddings of ``docids`` (one row each); an unknown docid raises ``KeyError``."""
        row_map = self._row_map()
        try:
            rows = [row_map[d] for d in docids]
        except KeyError as exc:
            raise KeyError(f"docid {exc.args[0]!r} is not in the dense index") from None
        return np.asarray(self.embeddings[rows], dtype=np.float32)

    # --- saving and loading ---------------------------------------------------------------

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
            if self.kind in IVF_KINDS:
                manifest["nprobe"] = self._nprobe
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
    def load(
        cls,
        path: str | os.PathLike[str],
        gpu: bool | str = "auto",
        mmap: bool = True,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> DenseIndex:
        """Open a saved index; a missing, incomplete or unreadable folder raises :class:`IndexMissingError`.

        With ``mmap`` the raw embeddings are memory-mapped rather than read into memory.
        ``nprobe`` (IVF) and ``ef_search`` (HNSW) override the saved search settings
        (``None``: as saved); they change the search only, never the index.
        """
        path = Path(path)
        check_optional_int(nprobe, "nprobe", 1)
        check_optional_int(ef_search, "ef_search", 1)
        if not path.is_dir():
            raise IndexMissingError(f"no dense index at {path}")
        if not cls.is_complete(path):
            raise IndexMissingError(f"dense index at {path} is incomplete (no complete marker); rebuild it")
        manifest = json.loads((path / MANIFEST).read_text())
        kind, version = manifest.get("kind"), manifest.get("format", 1)
        if kind not in KINDS or not isinstance(version, int) or version > FORMAT_VERSION:
            raise IndexMissingError(f"dense index at {path} (kind {str(kind)[:40]!r}, format {str(version)[:20]}) "
                                    "was written by a newer rankkit; rebuild it")
        try:
            index = faiss.read_index(str(path / "index.faiss"))
            embeddings = np.load(path / "embeddings.npy", mmap_mode="r" if mmap else None)
            docids = json.loads((path / "docids.json").read_text(encoding="utf-8"))
        except (OSError, RuntimeError, ValueError) as exc:
            raise IndexMissingError(f"dense index at {path} is unreadable ({exc}); rebuild it") from exc
        if not (len(docids) == index.ntotal == embeddings.shape[0] == manifest["count"]):
            raise IndexMissingError(f"dense index at {path} is inconsistent (counts differ); rebuild it")
        if kind in IVF_KINDS and nprobe is None:
            nprobe = manifest.get("nprobe") or int(index.nprobe)
        return cls(index, docids, embeddings, kind,
                   ef_search=ef_search if ef_search is not None else manifest.get("ef_search", 128),
                   nprobe=nprobe if kind in IVF_KINDS else None,
                   model=manifest.get("model"), settings=manifest.get("settings"), gpu=gpu)
