"""The reranker base: candidates in, scores out, the run built once.

Every reranking stage (cross-encoder, dense-as-reranker, setwise LLM, and the next
ones) shares the same steps, written here once: require an incoming run and a dataset,
keep the top ``depth`` candidates of each query (in the run's rank order), drop
queries without text (with a warning), fetch the candidates' texts, build the
output :class:`Run` from the scores that the subclass's :meth:`Reranker.score` returns,
and (``keep_tail``, the default) append the incoming run's documents below ``depth``
after the reranked head, in the incoming run's order (:func:`append_tail`).
Subclasses implement :meth:`Reranker.score` (and optionally :meth:`Reranker.rescore`, e.g.
to cache scores, and :meth:`Reranker.finish`, e.g. interpolation with the first stage). :class:`RerankerOptions` is the one options
dataclass for depth, tail, batch size, device, precision, progress, cache and name; each
stage's config extends it.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rankkit.config import Device, PositiveInt, Precision, from_mapping, validate_fields
from rankkit.errors import ConfigError
from rankkit.pipeline import PathStr, Stage, StageName, register_stage, short_repr
from rankkit.precision import check_precision
from rankkit.types import Query, Run

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset

log = logging.getLogger(__name__)


@dataclass
class RerankerOptions:
    """Options every reranker has: candidates per query (``depth``; ``None``: all), ``keep_tail``
    (keep the incoming documents below ``depth`` after the reranked ones; ``false``: cut them),
    ``batch_size``, ``device`` (``auto``: CUDA when present), ``precision`` (:mod:`rankkit.precision`),
    ``show_progress``, ``cache_dir`` (content-keyed cache) and ``name``. ``depth`` and
    ``batch_size`` are integers >= 1; ``device`` is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """

    depth: PositiveInt | None = 100
    keep_tail: bool = True
    batch_size: PositiveInt = 64
    device: Device = "auto"
    precision: Precision = "auto"
    show_progress: bool = True
    cache_dir: PathStr | None = None
    name: StageName | None = None

    def __post_init__(self) -> None:
        # A config built directly in Python (or by dataclasses.replace) gets the checks of from_mapping.
        validate_fields(self, type(self).__name__)
        for key in ("depth", "batch_size"):
            value = getattr(self, key)
            if value is None and key == "depth":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {short_repr(value)}")
        if self.precision != "int8":  # int8 only where a subclass allows it (its field type says so)
            check_precision(self.precision)


class Reranker(Stage):
    """Base of every reranking stage (see the module docstring).

    Every subclass is built the same way: ``Stage(dataset, config)`` with a config object of
    its :attr:`config_class`, or ``Stage(dataset, option=value, ...)`` with keywords (errors
    name the unknown key); :func:`register_reranker` makes it a YAML stage type.
    """

    kind = "reranker"
    config_class: ClassVar[type[RerankerOptions]] = RerankerOptions

    def __init__(self, dataset: Dataset | None = None, config: RerankerOptions | None = None,
                 **options: Any) -> None:
        where = type(self).__name__
        if config is not None and options:
            raise ConfigError(f"give {where} either a config or keyword options, not both")
        if config is None:
            config = from_mapping(self.config_class, options, where)
        elif not isinstance(config, self.config_class):
            raise ConfigError(f"{where}: config must be a {self.config_class.__name__}, got {type(config).__name__}")
        self.dataset = dataset
        self.config = config
        self.name = config.name or self.kind
        self.cache_dir = Path(config.cache_dir) if config.cache_dir else None

    @classmethod
    def from_config(cls, config: RerankerOptions, dataset: Dataset | None) -> Reranker:
        """Build the stage from its config object."""
        return cls(dataset, config)

    @abc.abstractmethod
    def score(self, queries: dict[str, str], candidates: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        """Scores ``{qid: {docid: score}}`` for each query's candidates (given in first-stage rank order)."""

    def finish(self, top: Run, reranked: Run) -> Run:
        """The output run from the candidates ``top`` and their new scores (default: the new scores)."""
        return reranked

    def candidates(self, queries: list[Query], run: Run | None) -> tuple[Run, dict[str, str]]:
        """The top ``depth`` of ``run`` for queries with text, and those queries' texts."""
        if run is None:
            raise ConfigError(f"{self.name}: a reranker rescores an incoming run; put it after a retriever")
        if self.dataset is None:
            raise ConfigError(f"{self.name}: needs the dataset to fetch document texts ({type(self).__name__}"
                              "(dataset, ...))")
        depth = self.config.depth
        top = run.top_k(depth) if depth is not None else run
        texts = {q.qid: q.text for q in queries}
        missing = [qid for qid in top if qid not in texts]
        if missing:
            log.warning("%s: %d queries of the incoming run have no query text; they are dropped",
                        self.name, len(missing))
            top = Run({qid: top[qid] for qid in top if qid in texts}, name=run.name)
        return top, {qid: texts[qid] for qid in top}

    def doc_texts(self, docids: list[str]) -> dict[str, str]:
        """``title + " " + text`` of each document id (unknown ids raise the dataset's error)."""
        assert self.dataset is not None
        found = self.dataset.docs(docids)
        return {d: found[d].contents for d in docids}

    def rescore(self, top: Run, texts: dict[str, str]) -> Run:
        """New scores for the candidates ``top`` (through :meth:`score`; a subclass may cache them)."""
        ranked = {qid: [d for d, _ in top.ranked(qid)] for qid in top}
        return Run(self.score(texts, ranked), name=self.name)

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        top, texts = self.candidates(queries, run)
        head = self.finish(top, self.rescore(top, texts))
        if not self.config.keep_tail or self.config.depth is None:
            return head
        assert run is not None  # candidates() raised otherwise
        return append_tail(head, run)

    def cache_spec(self) -> dict[str, Any] | None:
        return None


def append_tail(head: Run, run: Run) -> Run:
    """``head`` with, for each of its queries, ``run``'s other documents appended below it in ``run``'s order.

    The ``j``-th appended document (0-based, in :meth:`Run.ranked` order of ``run``) scores
    ``min(head) - (j + 1) * step``: strictly below every head document and strictly decreasing,
    so the tail keeps the incoming order, ties included. ``step`` is 1, or ``|min(head)| / 2**20``
    when that is larger, so that the steps stay distinct in float64. A query with an empty head
    gets its tail from 0 down. Queries of ``run`` that are not in ``head`` stay out.
    """
    out: dict[str, dict[str, float]] = {}
    for qid, docs in head.items():
        scores = dict(docs)
        tail = [d for d, _ in run.ranked(qid) if d not in scores] if qid in run else []
        if tail:
            floor = min(scores.values()) if scores else 1.0
            step = max(1.0, abs(floor) * 2.0 ** -20)
            scores.update({d: floor - (j + 1) * step for j, d in enumerate(tail)})
        out[qid] = scores
    return Run(out, name=head.name)


def register_reranker(name: str, cls: type[Reranker]) -> None:
    """Register ``cls`` as the YAML stage type ``name`` (its options: ``cls.config_class``)."""
    register_stage(name, cls.config_class)(lambda cfg, dataset, overrides: cls.from_config(cfg, dataset))
