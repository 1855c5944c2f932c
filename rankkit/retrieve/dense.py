"""Dense retrieval and reranking with bi-encoders (sentence-transformers) and FAISS.

:class:`Encoder` wraps ``sentence_transformers.SentenceTransformer`` (any ST model, or
a plain HF encoder, to which ST adds mean pooling) and encodes a whole list in one
``encode`` call, so it runs as fast as sentence-transformers itself; a bi-encoder folder
trained by rankkit (:mod:`rankkit.retrieve.bi_encoder`) is encoded by its own model. Documents are
encoded as ``title + " " + text`` (:attr:`Document.contents`), the BEIR convention.

:class:`Dense` is a pipeline stage (a :class:`~rankkit.rerank.base.Reranker` that can also retrieve). As a first stage it builds (or loads from the
cache) a :class:`~rankkit.index.faiss.DenseIndex` of the dataset's corpus, kept under
``<cache>/dense/<key>`` where the key covers the corpus fingerprint, the model and
everything that changes document vectors; then it encodes the queries and returns the
top ``hits`` by inner product. Given an incoming run it reranks it instead: each
candidate's score is the inner product of the query and document embeddings, with
document vectors taken from the corpus index (``vectors``) or, with
``encode_candidates=True``, encoded on the fly for the candidates only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from rankkit import settings
from rankkit.config import Backend, InferencePrecision, PositiveInt
from rankkit.errors import ConfigError, DatasetError, IndexMissingError
from rankkit.models import (
    MINILM_ID,
    loading_progress,
    model_identity,
    resolve_device,
    resolve_model,
)
from rankkit.pipeline import PathStr, Stage, short_repr
from rankkit.rerank.base import Reranker, RerankerOptions, register_reranker
from rankkit.types import Document, Query, Run

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.index.faiss import DenseIndex
    from rankkit.retrieve.bi_encoder import BiEncoderModel

log = logging.getLogger(__name__)

_CHUNK = 100_000  # documents per encode call when indexing (bounds the texts held in memory)
_RERANK_MODES = ("auto", "never", "always")
_INDEX_KINDS = ("flat", "hnsw", "ivf_flat", "ivf_pq")


class Encoder:
    """A bi-encoder: texts to float32 vectors.

    ``model`` is any HF id or local path (resolved by :func:`rankkit.models.resolve_model`):
    a folder trained by rankkit (``rankkit_bi.json``, :class:`~rankkit.retrieve.bi_encoder.BiEncoderModel`,
    LoRA adapter included) or any sentence-transformers model / plain HF encoder (to which
    sentence-transformers adds mean pooling), encoded with one ``SentenceTransformer.encode``
    call per list. ``max_length`` caps tokens per text; ``normalize`` L2-normalises outputs
    (off by default: all-MiniLM-L6-v2 has a Normalize module, rankkit bi-encoders normalise
    as trained); ``query_prefix`` and ``doc_prefix`` are prepended to texts (e.g. ``"query: "``
    for E5); ``precision`` follows :mod:`rankkit.precision` (``auto``: bf16 weights on CUDA,
    fp32 on the CPU). Safetensors weights only; no remote code unless ``trust_remote_code``.
    """

    def __init__(
        self,
        model: str = MINILM_ID,
        max_length: int = 256,
        batch_size: int = 64,
        normalize: bool = False,
        device: str = "auto",
        query_prefix: str = "",
        doc_prefix: str = "",
        precision: str = "auto",
        show_progress: bool = False,
        trust_remote_code: bool = False,
        *,
        bi_encoder: BiEncoderModel | None = None,
        backend: str = "torch",
    ) -> None:
        from rankkit.backends import resolve as resolve_backend
        from rankkit.hf_encoder import check_kind
        from rankkit.precision import load_dtype, precision_name
        from rankkit.retrieve.bi_encoder import (
            CONFIG_FILE,
            BiEncoderModel,
            st_as_bi_encoder,
        )

        self.model_path = resolve_model(model)
        self.device = resolve_device(device)
        self.backend, run_precision = resolve_backend(backend, precision, self.device, where="dense")
        if self.backend == "onnx":
            precision = "fp32"  # the weights loaded for export
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.query_prefix = query_prefix
        self.doc_prefix = doc_prefix
        self.show_progress = bool(show_progress)
        self._max_length = int(max_length)
        self.precision = precision_name(precision, self.device) if self.backend == "torch" else run_precision
        dtype = load_dtype(precision, self.device)
        self.bi_encoder = bi_encoder
        self.model: Any = None
        if bi_encoder is None and Path(self.model_path).is_dir():
            check_kind(Path(self.model_path), CONFIG_FILE)
            if (Path(self.model_path) / CONFIG_FILE).is_file():
                with loading_progress(self.show_progress):
                    self.bi_encoder = BiEncoderModel.load(self.model_path, merge=True)
        if self.bi_encoder is None and self.backend == "onnx":  # a sentence-transformers model, run as a BiEncoderModel
            with loading_progress(self.show_progress):
                self.bi_encoder = st_as_bi_encoder(self.model_path, self._max_length,
                                                   fallback=backend == "auto")
            if self.bi_encoder is None:  # backend auto, architecture not exportable: logged by st_as_bi_encoder
                self.backend, self.precision = "torch", precision_name("fp32", self.device)
        if self.bi_encoder is not None:
            self.bi_encoder.to(device=self.device, dtype=dtype).eval()
            return
        from sentence_transformers import SentenceTransformer

        with loading_progress(self.show_progress):  # transformers' "Loading weights" bar
            self.model = SentenceTransformer(self.model_path, device=self.device, trust_remote_code=trust_remote_code,
                                             model_kwargs={"use_safetensors": True})
        self.model.max_seq_length = self._max_length
        if self.precision != "fp32":
            self.model.to(dtype)

    @classmethod
    def from_model(cls, model: BiEncoderModel, batch_size: int = 64, device: str = "auto",
                   precision: str = "auto") -> Encoder:
        """An encoder around an already loaded (e.g. training) :class:`BiEncoderModel`."""
        return cls(model.base, model.max_length, batch_size, device=device, precision=precision, bi_encoder=model)

    def __repr__(self) -> str:
        return f"Encoder({self.model_path!r}, device={self.device!r}, max_length={self.max_length})"

    @property
    def max_length(self) -> int:
        """Maximum tokens per text (longer texts are truncated)."""
        return int(self.model.max_seq_length) if self.model is not None else self._max_length

    @property
    def dim(self) -> int:
        """Dimension of the embeddings."""
        if self.bi_encoder is not None:
            return self.bi_encoder.dim
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())  # renamed in sentence-transformers 6

    def encode(self, texts: Sequence[str], prefix: str = "") -> np.ndarray:
        """Encode ``texts`` (each prefixed with ``prefix``) into a float32 array, one row per text."""
        items = [prefix + t for t in texts] if prefix else list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.bi_encoder is not None:
            emb = self.bi_encoder.encode(items, batch_size=self.batch_size, max_length=self._max_length,
                                         device=self.device, show_progress=self.show_progress, backend=self.backend,
                                         precision=self.precision)
            if self.normalize:
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            return np.asarray(emb, dtype=np.float32)
        emb = self.model.encode(items, batch_size=self.batch_size, show_progress_bar=self.show_progress,
                                convert_to_numpy=True, normalize_embeddings=self.normalize)
        return np.asarray(emb, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Encode query texts (with ``query_prefix``)."""
        return self.encode(texts, self.query_prefix)

    def encode_docs(self, docs: Sequence[Document]) -> np.ndarray:
        """Encode documents as ``title + " " + text`` (with ``doc_prefix``)."""
        return self.encode([d.contents for d in docs], self.doc_prefix)


@dataclass
class DenseConfig(RerankerOptions):
    """Options of the dense stage (one source of truth for Python, YAML and CLI).

    ``model`` is any sentence-transformers / HF encoder or a bi-encoder folder trained by
    rankkit. ``index`` is ``"flat"`` (exact), ``"hnsw"``, ``"ivf_flat"`` or ``"ivf_pq"``
    (:mod:`rankkit.index.faiss`: HNSW takes ``hnsw_m``, ``ef_construction`` and, at search
    time, ``ef_search``; IVF takes ``nlist`` (default about 4 * sqrt(corpus size)),
    ``train_size`` (k-means sample, default 40 * nlist), for IVF-PQ ``pq_m`` (sub-quantizers,
    dividing the embedding dimension; default the divisor nearest dim / 8) and ``pq_nbits``
    (1 to 16, default 8), and at search time ``nprobe`` (default min(32, nlist), at most
    ``nlist``)). Parameters that change the built index are part of its cache key;
    ``nprobe`` and ``ef_search`` are not: they are applied to a cached index when it is
    loaded, and are part of the run cache key instead. ``rerank`` is ``"auto"``
    (rescore an incoming run when there is one), ``"never"`` (always retrieve) or
    ``"always"`` (require an incoming run). As a reranker it rescores the top ``depth``
    candidates (default: all of them; with a ``depth``, ``keep_tail`` keeps the rest below
    them). ``cache_dir`` roots both the index cache and the
    run cache (default: the index under ``RANKKIT_CACHE_DIR``, no run cache). The shared
    options are :class:`~rankkit.rerank.base.RerankerOptions`. ``hits``, ``max_length``,
    ``ef_construction`` and ``ef_search`` are integers >= 1, ``hnsw_m`` one >= 2; ``gpu`` is
    ``true``, ``false`` or ``"auto"``. ``backend`` and ``precision`` choose how texts are
    encoded (:mod:`rankkit.backends`; ``auto``: bf16 torch on CUDA, the measured default on the CPU).
    """

    depth: PositiveInt | None = None
    backend: Backend = "auto"
    precision: InferencePrecision = "auto"
    model: PathStr = MINILM_ID
    max_length: PositiveInt = 256
    normalize: bool = False
    query_prefix: Annotated[str, Field(max_length=1000)] = ""
    doc_prefix: Annotated[str, Field(max_length=1000)] = ""
    hits: PositiveInt = 1000
    index: Literal["flat", "hnsw", "ivf_flat", "ivf_pq"] = "flat"
    hnsw_m: Annotated[int, Field(ge=2)] = 32
    ef_construction: PositiveInt = 40
    ef_search: PositiveInt = 128
    nlist: PositiveInt | None = None
    nprobe: PositiveInt | None = None
    pq_m: PositiveInt | None = None
    pq_nbits: Annotated[int, Field(ge=1, le=16)] = 8
    train_size: PositiveInt | None = None
    gpu: bool | Literal["auto"] = "auto"
    rerank: Literal["auto", "never", "always"] = "auto"
    encode_candidates: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        from rankkit.backends import check_pair

        check_pair(self.backend, self.precision)
        if self.hits < 1 or self.max_length < 1:
            raise ValueError("hits and max_length must be >= 1")
        if self.index not in _INDEX_KINDS:
            raise ValueError(f"index must be one of {', '.join(_INDEX_KINDS)}, got {short_repr(self.index)}")
        if self.nlist is not None and self.nprobe is not None and self.nprobe > self.nlist:
            raise ValueError(f"nprobe={self.nprobe} is larger than nlist={self.nlist}: an IVF search cannot scan "
                             "more lists than the index has")
        if (self.index.startswith("ivf") and self.nlist is not None and self.train_size is not None
                and self.train_size < self.nlist):
            raise ValueError(f"train_size={self.train_size} is smaller than nlist={self.nlist}")
        if self.rerank not in _RERANK_MODES:
            raise ValueError(f"rerank must be one of {', '.join(_RERANK_MODES)}, got {short_repr(self.rerank)}")


class Dense(Reranker):
    """Dense retriever / reranker over a dataset's corpus (see the module docstring).

    ``Dense(dataset, model=..., hits=...)`` takes :class:`DenseConfig` options as
    keywords; ``Dense.from_config(config, dataset)`` takes a config object; a ready
    :class:`Encoder` can be passed as ``encoder=`` (e.g. a model being trained).
    """

    kind = "dense"
    config_class = DenseConfig
    config: DenseConfig

    def __init__(self, dataset: Dataset | None = None, config: DenseConfig | None = None, *,
                 encoder: Encoder | None = None, **options: Any) -> None:
        if dataset is None:
            raise ConfigError("the dense stage needs a dataset (its corpus is what gets indexed); "
                              "pass dataset=... (or to Pipeline.from_yaml)")
        super().__init__(dataset, config, **options)
        self.dataset: Dataset = dataset
        self._encoder: Encoder | None = encoder
        self._index: DenseIndex | None = None
        self._key: str | None = None

    def __repr__(self) -> str:
        return f"Dense(model={self.config.model!r}, index={self.config.index!r}, hits={self.config.hits})"

    @property
    def encoder(self) -> Encoder:
        """The encoder (the model is loaded on first use)."""
        if self._encoder is None:
            cfg = self.config
            self._encoder = Encoder(cfg.model, cfg.max_length, cfg.batch_size, cfg.normalize, cfg.device,
                                    cfg.query_prefix, cfg.doc_prefix, cfg.precision, cfg.show_progress,
                                    backend=cfg.backend)
        return self._encoder

    def _precision(self) -> str:
        """The precision vectors are computed in (``onnx-`` in front for ONNX Runtime): part of the index key."""
        if self._encoder is not None:
            backend, precision = self._encoder.backend, self._encoder.precision
        else:
            from rankkit.backends import resolve as resolve_backend
            from rankkit.precision import precision_name

            device = resolve_device(self.config.device)
            backend, precision = resolve_backend(self.config.backend, self.config.precision, device, where="dense")
            if backend == "torch":
                precision = precision_name(precision, device)
        return precision if backend == "torch" else f"{backend}-{precision}"

    def index_key(self) -> str:
        """SHA-256 key of the corpus index: corpus, model, and every option that changes doc vectors."""
        if self._key is None:
            from rankkit.hf_encoder import check_kind
            from rankkit.retrieve.bi_encoder import CONFIG_FILE

            cfg = self.config
            if Path(resolve_model(cfg.model)).is_dir():
                check_kind(Path(resolve_model(cfg.model)), CONFIG_FILE)
            spec = {"corpus": self.dataset.fingerprint(), "model": model_identity(resolve_model(cfg.model)),
                    "max_length": cfg.max_length, "normalize": cfg.normalize, "doc_prefix": cfg.doc_prefix,
                    "precision": self._precision(), "index": cfg.index,
                    "hnsw": [cfg.hnsw_m, cfg.ef_construction] if cfg.index == "hnsw" else None}
            if cfg.index.startswith("ivf"):  # flat and HNSW keys stay as they were before the IVF kinds
                spec["ivf"] = self._index_params(search=False)
            self._key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        return self._key

    @property
    def index_path(self) -> Path:
        """Where the corpus index of this configuration is cached."""
        root = Path(self.config.cache_dir) if self.config.cache_dir else settings.cache_dir()
        return root / "dense" / self.index_key()[:32]

    @property
    def index(self) -> DenseIndex:
        """The corpus index: loaded from the cache, or built (encoding the corpus) and saved."""
        if self._index is None:
            from rankkit.index.faiss import DenseIndex

            path = self.index_path
            try:
                self._index = DenseIndex.load(path, gpu=self.config.gpu, nprobe=self.config.nprobe,
                                              ef_search=self.config.ef_search)
                log.info("%s: loaded cached dense index %s", self.name, path)
            except IndexMissingError:
                self.build_index()
        return self._index

    def build_index(self, encode_docs: Callable[[list[Document]], np.ndarray] | None = None) -> DenseIndex:
        """Encode the corpus, build its index and save it in the cache (replacing any copy there).

        ``encode_docs`` maps a list of documents to their vectors (default: this stage's
        encoder); :func:`rankkit.scale.ray_encode.build_dense_index_on_ray` passes one that
        encodes on Ray workers.
        """
        self._index = self._build_index(encode_docs)
        self._index.save(self.index_path)
        return self._index

    def _build_index(self, encode_docs: Callable[[list[Document]], np.ndarray] | None = None) -> DenseIndex:
        from rankkit.index.faiss import DenseIndex, check_params

        cfg = self.config
        if encode_docs is None:
            enc = self.encoder
            encode_docs, model_path, precision = enc.encode_docs, enc.model_path, enc.precision
        else:
            model_path, precision = resolve_model(cfg.model), self._precision()
        # index settings (pq_m against the dimension too, when the encoder is here) fail before the corpus is encoded
        check_params(dim=self._encoder.dim if self._encoder is not None else None, **self._index_params())
        start = time.perf_counter()
        docids: list[str] = []
        parts: list[np.ndarray] = []
        docs_iter = self.dataset.docs_iter()
        while chunk := list(itertools.islice(docs_iter, _CHUNK)):
            docids.extend(d.docid for d in chunk)
            parts.append(encode_docs(chunk))
        if not docids:
            raise DatasetError(f"dataset {self.dataset.name!r} has an empty corpus")
        emb = np.concatenate(parts) if len(parts) > 1 else parts[0]
        secs = time.perf_counter() - start
        log.info("%s: encoded %d docs in %.1f s (%.0f docs/s)", self.name, len(docids), secs, len(docids) / secs)
        return DenseIndex.build(emb, docids, **self._index_params(), gpu=cfg.gpu, model=model_path,
                                settings={"max_length": cfg.max_length, "normalize": cfg.normalize,
                                          "doc_prefix": cfg.doc_prefix, "precision": precision,
                                          "key": self.index_key()})

    def _index_params(self, search: bool = True) -> dict[str, Any]:
        """The :class:`~rankkit.index.faiss.DenseIndex` parameters of this configuration.

        With ``search=False`` only those that change the built index (the cache key's
        ``ivf`` part): ``nprobe`` and ``ef_search`` are left out.
        """
        cfg = self.config
        params: dict[str, Any] = {"kind": cfg.index, "hnsw_m": cfg.hnsw_m, "ef_construction": cfg.ef_construction}
        if cfg.index.startswith("ivf"):
            params.update(nlist=cfg.nlist, train_size=cfg.train_size, seed=0)
            if cfg.index == "ivf_pq":
                params.update(pq_m=cfg.pq_m, pq_nbits=cfg.pq_nbits)
        if not search:
            return {k: v for k, v in params.items() if k not in ("kind", "hnsw_m", "ef_construction")}
        return {**params, "ef_search": cfg.ef_search, "nprobe": cfg.nprobe}

    def with_hits(self, k: int) -> Stage | None:
        """A copy retrieving at most ``k`` hits (flat index only), sharing the loaded model and index.

        Not exact (``exact_hits`` is False): reranking an incoming run ignores ``hits``, so
        the pipeline keeps the cutoff after the copy. ``None`` for an approximate index
        (HNSW's search depth changes which neighbours it finds) and for ``rerank="always"``.
        """
        cfg = self.config
        if cfg.index != "flat" or cfg.rerank == "always":
            return None
        if k >= cfg.hits:
            return self
        stage = Dense(self.dataset, config=replace(cfg, hits=k))
        stage._encoder, stage._index, stage._key = self._encoder, self._index, self._key
        return stage

    def cache_spec(self) -> dict[str, Any] | None:
        cfg = self.config
        return {"index": self.index_key(), "query_prefix": cfg.query_prefix, "hits": cfg.hits, "depth": cfg.depth,
                "keep_tail": cfg.keep_tail, "ef_search": cfg.ef_search, "rerank": cfg.rerank,
                "encode_candidates": cfg.encode_candidates,
                **({"nprobe": cfg.nprobe} if cfg.index.startswith("ivf") else {})}

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        mode = self.config.rerank
        if run is None and mode == "always":
            raise ConfigError(f"{self.name}: rerank='always' needs an incoming run (put it after a retriever)")
        if run is not None and mode != "never":
            return super().transform(queries, run)
        return self._retrieve(queries)

    def _retrieve(self, queries: list[Query]) -> Run:
        index = self.index
        qvecs = self.encoder.encode_queries([q.text for q in queries])
        scores, docids = index.search(qvecs, self.config.hits)
        out = {q.qid: {d: float(s) for d, s in zip(ids, row)} for q, ids, row in zip(queries, docids, scores)}
        return Run(out, name=self.name)

    def score(self, queries: dict[str, str], candidates: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        """Inner products of query and candidate embeddings (candidates from the index, or encoded on the fly)."""
        qids = list(queries)
        qvecs = self.encoder.encode_queries([queries[q] for q in qids])
        wanted = list(dict.fromkeys(d for q in qids for d in candidates[q]))
        if self.config.encode_candidates:
            found = self.dataset.docs(wanted)
            dvecs = self.encoder.encode_docs([found[d] for d in wanted])
        else:
            try:
                dvecs = self.index.vectors(wanted)
            except KeyError as exc:
                raise DatasetError(f"{self.name}: {exc.args[0]} (the incoming run names documents outside "
                                   f"the corpus of dataset {self.dataset.name!r})") from None
        rows = {d: i for i, d in enumerate(wanted)}
        out: dict[str, dict[str, float]] = {}
        for q, qvec in zip(qids, qvecs):
            cands = candidates[q]
            scores = dvecs[[rows[d] for d in cands]] @ qvec if cands else []
            out[q] = {d: float(s) for d, s in zip(cands, scores)}
        return out


register_reranker("dense", Dense)
