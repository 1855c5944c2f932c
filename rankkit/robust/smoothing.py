"""The randomised-smoothing ranker of CertDR, as a rerank stage.

CertDR (Wu et al., CIKM 2022, arXiv 2209.06691) ranks by
``g(q, d) = E_{d' ~ Pi(d)} [sigmoid(f(q, d'))]``, estimated from ``samples`` Monte Carlo draws
of the random substitution distribution Pi (:mod:`rankkit.robust.perturb`), where f is any
base ranker that can score a query against free text: a cross-encoder, a dense bi-encoder or
BM25 over an index's statistics (:func:`text_scorer`). Every (query, text) pair goes through a
:class:`~rankkit.cache.PairScoreCache`, so a pair is never scored twice: repeated samples (a
document with few perturbable words), the first 100 of 1,000 samples (sample ``i`` of a text
is fixed, see :class:`~rankkit.robust.perturb.Substituter`) and reruns (on disk, with
``cache_dir``) are free.

``max_words`` cuts each document to its first words before sampling and scoring, so the ranker
never reads what lies beyond, and substitutions there cannot change its input (the bound
counts only the words read).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rankkit.cache import PairScoreCache
from rankkit.config import PositiveInt, Seed
from rankkit.errors import ConfigError
from rankkit.pipeline import PathStr, Stage
from rankkit.rerank.base import Reranker, RerankerOptions
from rankkit.robust.perturb import PerturbationTable, PerturbConfig, Substituter, TextScorer, build_table

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset

log = logging.getLogger(__name__)


_WORD_END = re.compile(r"[A-Za-z]+")


def first_words(text: str, n: int | None) -> str:
    """``text`` up to the end of its ``n``-th word (all of it when ``n`` is None or it is shorter)."""
    if n is None:
        return text
    for i, m in enumerate(_WORD_END.finditer(text)):
        if i + 1 == n:
            return text[:m.end()]
    return text


def text_scorer(stage: Stage, show_progress: bool = False) -> TextScorer:
    """How ``stage`` scores a query against free texts: cross-encoder, dense, BM25 or a smoothed ranker."""
    from rankkit.rerank.cross_encoder import CrossEncoder
    from rankkit.retrieve.bm25 import BM25
    from rankkit.retrieve.dense import Dense

    if isinstance(stage, SmoothedRanker):
        return stage.smoothed_scores
    if isinstance(stage, CrossEncoder):
        c = stage.config

        def ce(query: str, texts: Sequence[str]) -> np.ndarray:
            return np.asarray(stage.scorer.score([query] * len(texts), list(texts), batch_size=c.batch_size,
                                                 max_length=c.max_length, device=c.device, precision=c.precision,
                                                 backend=c.backend, show_progress=show_progress), dtype=np.float64)
        return ce
    if isinstance(stage, Dense):
        enc = stage.encoder

        def dense(query: str, texts: Sequence[str]) -> np.ndarray:
            q = enc.encode_queries([query])[0]
            return np.asarray(enc.encode(list(texts), enc.doc_prefix) @ q, dtype=np.float64)
        return dense
    if isinstance(stage, BM25):
        return stage.text_scorer().score
    raise ConfigError(f"{type(stage).__name__} cannot score free text: the base ranker must be a cross_encoder, "
                      "dense or bm25 stage")


#: Stage options that do not change a free-text score (left out of the score cache's key).
_NOT_SCORING = frozenset({"show_progress", "cache_dir", "name", "depth", "keep_tail", "batch_size", "interpolate",
                          "hits", "search_depth", "threads", "rerank", "remove_query"})


def scorer_identity(stage: Stage) -> dict[str, Any]:
    """What determines a base ranker's free-text scores (the score cache's key)."""
    from rankkit.models import model_identity, resolve_model
    from rankkit.pipeline import stage_config

    config = {k: v for k, v in (stage_config(stage) or {}).items() if k not in _NOT_SCORING}
    spec: dict[str, Any] = {"stage": type(stage).__name__, "config": config}
    model = getattr(getattr(stage, "config", None), "model", None)
    if isinstance(model, str) and model:
        try:
            spec["model"] = model_identity(resolve_model(model))
        except Exception:  # noqa: BLE001 - an id the resolver cannot hash still keys by its name
            spec["model"] = model
    index = getattr(stage, "index", None)
    if type(stage).__name__ == "BM25" and index is not None:
        spec["index"] = str(getattr(index, "path", ""))
    return spec


@dataclass
class SmoothedConfig(RerankerOptions):
    """Options of the smoothed ranker (module docstring; defaults from the paper's code).

    ``samples`` (N) Monte Carlo draws per document; ``seed`` fixes them; ``table`` is a file of
    perturbation sets (``PerturbationTable.save``), else they are built from the dataset's
    corpus with ``perturbation``; ``max_words`` cuts documents to their first words (null: whole).
    The shared options are :class:`RerankerOptions` (``batch_size`` and ``device`` are the base's).
    """

    depth: PositiveInt | None = 100
    samples: PositiveInt = 1000
    seed: Seed = 0
    table: PathStr | None = None
    perturbation: PerturbConfig = field(default_factory=PerturbConfig)
    max_words: PositiveInt | None = None


class SmoothedRanker(Reranker):
    """g(q, d): the mean sigmoid of a base ranker over random substitutions of d (module docstring).

    ``SmoothedRanker(dataset, base=CrossEncoder(dataset, model=...), samples=1000)``; or give
    ``scorer=`` (a :data:`TextScorer`) with ``identity=`` (what keys its cache) instead of ``base``.
    After a call, :attr:`bounds` holds each scored document's o_d, :attr:`base_scores` its
    unperturbed base score, and :attr:`stats` the pairs scored and reused.
    """

    kind = "smoothed"
    config_class = SmoothedConfig
    config: SmoothedConfig

    def __init__(self, dataset: Dataset | None = None, config: SmoothedConfig | None = None, *,
                 base: Stage | None = None, scorer: TextScorer | None = None,
                 identity: dict[str, Any] | None = None, table: PerturbationTable | None = None,
                 **options: Any) -> None:
        super().__init__(dataset, config, **options)
        if (base is None) == (scorer is None):
            raise ConfigError("SmoothedRanker needs exactly one of base= (a rerank stage) or scorer=")
        self.base = base
        self._scorer = scorer
        self._identity = identity if identity is not None else (scorer_identity(base) if base is not None else {})
        self._table = table
        self.bounds: dict[str, float] = {}
        self.base_scores: dict[str, dict[str, float]] = {}
        self.cache = PairScoreCache(self.cache_dir, {"base": self._identity})
        self.stats = {"pairs": 0, "scored": 0}

    def __repr__(self) -> str:
        return f"SmoothedRanker(base={self.base!r}, samples={self.config.samples})"

    @property
    def table(self) -> PerturbationTable:
        """The perturbation sets (the config's file, or built from the dataset's corpus on first use)."""
        if self._table is None:
            c = self.config
            if c.table:
                self._table = PerturbationTable.load(c.table)
            elif self.dataset is not None:
                self._table = build_table((d.contents for d in self.dataset.docs_iter()), c.perturbation)
            else:
                raise ConfigError(f"{self.name}: give a perturbation table (table=) or the dataset to build one")
        return self._table

    @property
    def substituter(self) -> Substituter:
        """The random substitution sampler (seeded by the config)."""
        return Substituter(self.table, seed=self.config.seed)

    @property
    def scorer(self) -> TextScorer:
        """The base ranker's free-text scorer."""
        if self._scorer is None:
            assert self.base is not None
            self._scorer = text_scorer(self.base)
        return self._scorer

    def raw_scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Base scores f(query, text) through the pair cache (each distinct pair scored once)."""
        before = self.cache.scored
        out = self.cache.scores(query, texts, self.scorer, batch=max(256, self.config.batch_size * 8))
        self.stats["pairs"] += len(texts)
        self.stats["scored"] += self.cache.scored - before
        return out

    def smoothed_scores(self, query: str, texts: Sequence[str], samples: int | None = None) -> np.ndarray:
        """g(query, text) for each text, from ``samples`` (default: the config's N) draws."""
        n = samples or self.config.samples
        sub = self.substituter
        texts = [first_words(t, self.config.max_words) for t in texts]
        drawn = [s for t in texts for s in sub.sample(t, n)]
        f = self.raw_scores(query, drawn).reshape(len(texts), n)
        return (1.0 / (1.0 + np.exp(-f))).mean(axis=1)

    def score(self, queries: dict[str, str], candidates: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        from tqdm.auto import tqdm

        docs = self.doc_texts(list(dict.fromkeys(d for ds in candidates.values() for d in ds)))
        cut = {d: first_words(t, self.config.max_words) for d, t in docs.items()}
        table = self.table
        self.bounds.update({d: table.bound(t) for d, t in cut.items()})
        fixed = sorted(d for d, t in cut.items() if not table.perturbable(t))
        if fixed:
            log.info("%s: %d of %d candidates have no perturbable word (e.g. %s): substitution leaves them as they "
                     "are, so g is sigmoid(f) of the text itself and o_d = 0", self.name, len(fixed), len(cut),
                     fixed[0])
        out: dict[str, dict[str, float]] = {}
        for qid in tqdm(candidates, desc=f"{self.name} (N={self.config.samples})", unit="query",
                        disable=not self.config.show_progress):
            ids = candidates[qid]
            g = self.smoothed_scores(queries[qid], [cut[d] for d in ids])
            f = self.raw_scores(queries[qid], [cut[d] for d in ids])
            out[qid] = {d: float(s) for d, s in zip(ids, g)}
            self.base_scores[qid] = {d: float(s) for d, s in zip(ids, f)}
        log.info("%s: %d pairs, %d scored (the rest from the cache)", self.name, self.stats["pairs"],
                 self.stats["scored"])
        return out
