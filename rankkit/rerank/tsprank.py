"""TSPRank: rerank a candidate list as the best travelling-salesman path over learned pairwise scores.

TSPRank (Li, Ziser, Xie, Cohen and Ma, KDD 2025, arXiv 2411.12064) scores every ordered
pair of candidates, ``A[i, j]`` = "i comes immediately before j", and decodes the whole
ranking as the maximum-weight open Hamiltonian path over ``A`` (:mod:`rankkit.rerank.tsp`).
The pairwise model (:mod:`rankkit.rerank.tsp_model`) reads one feature vector per
candidate, built here from a frozen text encoder (all-MiniLM-L6-v2 by default) and the
incoming run:

- ``product``: the element-wise product of the query and document embeddings;
- ``doc``: the document embedding;
- ``cosine``: the cosine similarity of query and document;
- ``score``: the incoming run's score, standardised within the list (0 for a constant list);
- ``rank``: the incoming rank scaled to [0, 1].

So TSPRank stacks on any first stage or reranker: after BM25 the ``score`` feature is
BM25's, after a cross-encoder it is the cross-encoder's. The stage ``tsprank`` reorders
the top ``depth`` (default 30) of the incoming run; the decoded path's first item scores
``depth``, the last 1, and the tail stays below (``keep_tail``). A pointwise head (the
baseline of the paper's comparison) sorts by its scores instead of decoding.
This module stays importable without torch: the model loads on first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import numpy as np
from pydantic import Field

from rankkit.config import (
    NonEmptyStr,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    validate_fields,
)
from rankkit.errors import ConfigError
from rankkit.models import MINILM_ID
from rankkit.pipeline import PathStr
from rankkit.rerank.base import Reranker, RerankerOptions, register_reranker
from rankkit.types import Run

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.rerank.tsp_model import EmbeddingCache, TSPRankModel

log = logging.getLogger(__name__)

Feature = Literal["product", "doc", "cosine", "score", "rank"]
FEATURES = get_args(Feature)
Head = Literal["bilinear", "deep", "separate", "pointwise"]
HEADS = get_args(Head)
Decoder = Literal["auto", "held_karp", "milp", "heuristic", "lkh"]


@dataclass(slots=True)
class TSPHeadSettings:
    """The TSPRank model (``model.tsp`` in a training YAML; saved with the model).

    ``features`` (a non-empty list of :data:`FEATURES`) are read from ``encoder`` (any
    sentence-transformers id or path, frozen; ``max_length`` tokens) and the incoming run.
    ``dim`` > 0 projects them linearly to ``dim`` (0 keeps them as they are); ``layers``
    transformer encoder layers (``attention_heads``, ``dim_ff``) then read the whole
    candidate set; ``dropout`` in [0, 1). ``head``: ``bilinear`` (``A = h_i^T W h_j + b``),
    ``deep`` (``deep_dim`` bilinear maps, tanh, then a linear layer), ``separate`` (one
    bilinear map above the diagonal, another below, as in the paper's code) or
    ``pointwise`` (an MLP score per candidate: the baseline, trained with the usual
    objectives). Defaults follow METHODS.md's events setting scaled to MiniLM: no
    transformer, dim 128. ``decoder`` and ``time_limit`` are the path solver that
    evaluates the model on the dev queries during training (a ``tsprank`` stage has its own).
    """

    head: Head = "bilinear"
    features: Annotated[list[Feature], Field(min_length=1)] = field(
        default_factory=lambda: ["product", "cosine", "score"])
    encoder: NonEmptyStr = MINILM_ID
    max_length: Annotated[int, Field(ge=8)] = 256
    dim: NonNegativeInt = 128
    layers: NonNegativeInt = 0
    attention_heads: PositiveInt = 4
    dim_ff: PositiveInt = 256
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    deep_dim: PositiveInt = 16
    decoder: Decoder = "auto"
    time_limit: PositiveFloat = 10.0

    def __post_init__(self) -> None:
        validate_fields(self, "model.tsp")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"features lists a feature twice: {self.features}")
        width = self.dim or None
        if self.layers and width is not None and width % self.attention_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by attention_heads ({self.attention_heads})")

    @property
    def pairwise(self) -> bool:
        """Whether the head scores ordered pairs (everything but ``pointwise``)."""
        return self.head != "pointwise"


def feature_dim(features: list[str], embedding_dim: int) -> int:
    """Width of the candidate feature vector for ``features`` over embeddings of ``embedding_dim``."""
    return sum(embedding_dim if f in ("product", "doc") else 1 for f in features)


def candidate_features(features: list[str], query: np.ndarray, docs: np.ndarray,
                       scores: np.ndarray | None = None) -> np.ndarray:
    """The ``[n, feature_dim]`` float32 features of ``n`` candidates (see the module docstring).

    ``query`` is ``[D]``, ``docs`` ``[n, D]`` (L2-normalised embeddings), ``scores`` the
    incoming run's ``[n]`` scores in rank order (needed by ``score``; ``rank`` uses the order).
    """
    n = len(docs)
    cols: list[np.ndarray] = []
    for f in features:
        if f == "product":
            cols.append(docs * query[None, :])
        elif f == "doc":
            cols.append(docs)
        elif f == "cosine":
            cols.append((docs @ query)[:, None])
        elif f == "score":
            if scores is None:
                raise ConfigError("feature 'score' needs the incoming run's scores")
            s = np.asarray(scores, dtype=np.float64)
            sd = s.std()
            cols.append(((s - s.mean()) / sd if sd > 0 else np.zeros(n))[:, None])
        elif f == "rank":
            cols.append((np.arange(n) / max(n - 1, 1))[:, None])
        else:
            raise ConfigError(f"unknown feature {f!r}; choose from {', '.join(FEATURES)}")
    return np.concatenate(cols, axis=1).astype(np.float32)


def order_to_scores(docids: list[str], order: list[int]) -> dict[str, float]:
    """Scores ``n, n-1, ..., 1`` down the decoded ``order`` (indices into ``docids``)."""
    n = len(order)
    return {docids[i]: float(n - pos) for pos, i in enumerate(order)}


@dataclass
class TSPRankConfig(RerankerOptions):
    """Options of the ``tsprank`` stage.

    ``model`` is a folder written by ``rankkit train reranker`` with ``model.kind: tsprank``.
    ``decoder`` chooses the path solver (``auto``: exact DP up to 13 candidates, exact MILP
    on HiGHS up to 60 within ``time_limit`` seconds per query, then LKH or local search;
    :func:`rankkit.rerank.tsp.decode`). ``depth`` defaults to 30, the list size the
    SciFact configs train on. The shared options are :class:`RerankerOptions`.
    """

    model: PathStr | None = None
    decoder: Decoder = "auto"
    time_limit: PositiveFloat = 10.0
    depth: PositiveInt | None = 30

    def __post_init__(self) -> None:
        RerankerOptions.__post_init__(self)
        if self.model is None:
            raise ConfigError("tsprank: model is required (a folder trained with model.kind: tsprank)")


class TSPRank(Reranker):
    """Reorder the top ``depth`` of a run by TSPRank (see the module docstring).

    ``TSPRank(dataset, model="models/tsprank")``; ``tsp_model=`` passes an already loaded
    :class:`~rankkit.rerank.tsp_model.TSPRankModel` (training's dev evaluation) and
    ``cache=`` an :class:`~rankkit.rerank.tsp_model.EmbeddingCache` to share.
    """

    kind = "tsprank"
    config_class = TSPRankConfig

    def __init__(self, dataset: Dataset | None = None, config: TSPRankConfig | None = None, *,
                 tsp_model: TSPRankModel | None = None, cache: EmbeddingCache | None = None,
                 **options: Any) -> None:
        if tsp_model is not None and "model" not in options and config is None:
            options["model"] = "<in memory>"
        super().__init__(dataset, config, **options)
        self._model = tsp_model
        self._cache = cache
        self.decode_stats: dict[str, int] = {}

    def _load(self) -> tuple[TSPRankModel, EmbeddingCache]:
        from rankkit.rerank.tsp_model import TSPRankModel, shared_cache

        if self._model is None:
            assert isinstance(self.config, TSPRankConfig)
            self._model = TSPRankModel.load(str(self.config.model))
        if self._cache is None:
            s = self._model.settings
            self._cache = shared_cache(s.encoder, s.max_length, self.config.batch_size, self.config.device)
        return self._model, self._cache

    def score(self, queries: dict[str, str], candidates: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        """Scores from the candidates' order alone (the ``score`` feature then sees ``n..1``)."""
        run = Run({q: {d: float(len(ds) - i) for i, d in enumerate(ds)} for q, ds in candidates.items()})
        return self.rescore(run, queries).to_dict()

    def rescore(self, top: Run, texts: dict[str, str]) -> Run:
        """Decode each query's candidates (in ``top``'s rank order, with its scores as the ``score`` feature)."""
        import torch
        from tqdm.auto import tqdm

        from rankkit.rerank.tsp import decode

        model, cache = self._load()
        cfg = self.config
        assert isinstance(cfg, TSPRankConfig)
        ranked = {qid: top.ranked(qid) for qid in top}
        doc_texts = self.doc_texts(list(dict.fromkeys(d for r in ranked.values() for d, _ in r)))
        cache.add(list(texts.values()) + list(doc_texts.values()), show_progress=cfg.show_progress)
        out: dict[str, dict[str, float]] = {}
        self.decode_stats = {}
        model.eval()
        for qid in tqdm(ranked, desc=self.name, unit="q", disable=not cfg.show_progress):
            docids = [d for d, _ in ranked[qid]]
            if not docids:
                out[qid] = {}
                continue
            feats = candidate_features(model.settings.features, cache.get([texts[qid]])[0],
                                       cache.get([doc_texts[d] for d in docids]),
                                       np.array([s for _, s in ranked[qid]]))
            with torch.no_grad():
                scores = model(torch.from_numpy(feats)[None])[0].double().numpy()
            if not model.settings.pairwise:
                order = sorted(range(len(docids)), key=lambda i: (-scores[i], i))
            else:
                result = decode(scores, method=cfg.decoder, time_limit=cfg.time_limit)
                order = result.order
                key = f"{result.method}{'' if result.optimal else ' (not proven optimal)'}"
                self.decode_stats[key] = self.decode_stats.get(key, 0) + 1
            out[qid] = order_to_scores(docids, order)
        if self.decode_stats:
            log.info("%s: decoders used %s", self.name, self.decode_stats)
        return Run(out, name=self.name)

    def cache_spec(self) -> dict[str, Any] | None:
        return None


register_reranker("tsprank", TSPRank)
