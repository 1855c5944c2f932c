"""BM25 retrieval through Pyserini's ``LuceneSearcher`` (Lucene, Anserini 1.7.1).

Defaults follow Pyserini's BEIR 2CR runs: k1=0.9, b=0.4, 1000 hits, and for
multifield indexes equal boosts on ``contents`` and ``title``. ``remove_query`` drops
a hit whose docid equals the qid, as Pyserini's ``--remove-query`` does (it matters
for collections such as ArguAna whose queries are corpus documents). It is a BEIR
convention, not a general rule: on a collection whose query and document ids are both
``1..N`` (Cranfield, Vaswani) it would drop, for every query, the document that shares
its number, relevant or not. So the default ``remove_query: auto`` follows the dataset
(:attr:`Dataset.remove_query`: on for BEIR's own datasets, off for any other collection
or a bare index); ``true``/``false`` force it. Whenever hits are removed, the log says
how many and :attr:`BM25.stats` (which ``rankkit retrieve`` writes to the run card)
counts them.

Hits come in Anserini's order (score, then docid ascending) with scores rounded to 1e-4
and lowered by 1e-6 per tie, so a shorter search is a prefix of a deeper one. A
:class:`Run` (like trec_eval) breaks score ties by docid *descending*, so where scores
tie across rank k the top k of a k-hit search can differ from the top k of the 1000-hit
run. ``search_depth`` removes the difference: with ``hits=10, search_depth=1000`` the stage returns
exactly the top 10 (in Run order) of the 1000-hit run, searching only as deep as the
scores at rank 10 require. A pipeline sets it when it pushes a cutoff into the stage
(``BM25(ds) % 10``, see :meth:`BM25.with_hits`), so the pushdown never changes a result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field
from tqdm.auto import tqdm

from rankkit.config import NonNegativeFloat, PositiveInt, Probability, validate_fields
from rankkit.errors import ConfigError
from rankkit.index.lucene import BM25TextScorer, IndexSettings, LuceneIndex
from rankkit.pipeline import PathStr, Stage, StageName, register_stage
from rankkit.types import Query, Run, rank_items

log = logging.getLogger(__name__)


#: A Lucene field name (e.g. ``contents``, ``title``).
FieldName = Annotated[str, Field(min_length=1, max_length=200)]
#: Hits per query: an integer >= 1 (the phrase keeps the message "hits must be >= 1 ...").
Hits = Annotated[int, Field(ge=1, description=">= 1 (an integer)")]


@dataclass
class BM25Config:
    """Options of the BM25 stage (one source of truth for Python, YAML and CLI).

    ``k1`` is a finite number >= 0 and ``b`` one in [0, 1] (Lucene's BM25 ranges);
    ``hits``, ``search_depth`` (>= ``hits``), ``threads`` and ``batch_size`` are integers
    >= 1; ``fields`` maps Lucene field names to finite boosts >= 0.
    """

    k1: NonNegativeFloat = 0.9
    b: Probability = 0.4
    hits: Hits = 1000
    search_depth: PositiveInt | None = None
    multifield: bool = False
    fields: dict[FieldName, NonNegativeFloat] = field(default_factory=dict)
    remove_query: bool | Literal["auto"] = "auto"
    threads: PositiveInt = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: PositiveInt = 64
    index: PathStr | None = None
    show_progress: bool = True
    cache_dir: PathStr | None = None
    name: StageName | None = None

    def __post_init__(self) -> None:
        validate_fields(self, "BM25Config")  # a config built directly in Python gets the checks of from_mapping
        if self.hits < 1:
            raise ValueError(f"hits must be >= 1, got {self.hits}")
        if self.search_depth is not None and self.search_depth < self.hits:
            raise ValueError(f"search_depth must be >= hits ({self.hits}), got {self.search_depth}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")


class BM25(Stage):
    """First-stage BM25 retriever over a Lucene index of a dataset's corpus.

    Give a :class:`~rankkit.data.dataset.Dataset` (its index is built or loaded from
    the cache) or an ``index`` path to an existing Pyserini/Anserini index. Searching
    is multi-threaded (``threads``) in batches of ``batch_size`` queries. With ``search_depth``
    (> ``hits``) the result is the top ``hits`` of a ``search_depth``-hit search in Run order
    (see the module docstring).
    """

    exact_hits = True

    def __init__(self, dataset: Any = None, **options: Any) -> None:
        from rankkit.config import from_mapping

        config = options.pop("config", None)
        if config is not None and options:
            raise ConfigError(f"give BM25 either a config or keyword options, not both (got {', '.join(options)})")
        if config is None:
            config = from_mapping(BM25Config, options, "BM25")
        elif not isinstance(config, BM25Config):
            raise ConfigError(f"BM25: config must be a BM25Config, got {type(config).__name__}")
        self.config: BM25Config = config
        self.dataset = dataset
        if dataset is None and self.config.index is None:
            raise ConfigError("BM25 needs a dataset (to index its corpus) or an index path")
        self.name = self.config.name or ("bm25-mf" if self.config.multifield else "bm25")
        self.cache_dir = self.config.cache_dir  # type: ignore[assignment]
        self._index: LuceneIndex | None = None
        self._searcher: Any = None
        self._text_scorer: BM25TextScorer | None = None
        self.remove_query = self._resolve_remove_query()
        #: Counters since the stage was built: ``removed_query_hits`` counts the hits dropped by ``remove_query``
        #: (at most one per query and search: the document whose id is the query id).
        self.stats: dict[str, int] = {}
        self._removed: set[str] = set()

    def _resolve_remove_query(self) -> bool:
        """``remove_query`` as a bool: ``auto`` takes the dataset's convention (off without a dataset)."""
        setting = self.config.remove_query
        if setting != "auto":
            return bool(setting)
        on = bool(getattr(self.dataset, "remove_query", False))
        if on:
            log.info("%s: remove_query on (auto): %s follows BEIR's convention of dropping a hit whose docid is the "
                     "query id; set remove_query: false to keep such hits", self.name, self.dataset.name)
        return on

    def __repr__(self) -> str:
        return f"BM25(k1={self.config.k1}, b={self.config.b}, multifield={self.config.multifield})"

    @property
    def index(self) -> LuceneIndex:
        """The Lucene index (built on first use when a dataset was given)."""
        if self._index is None:
            cfg = self.config
            if cfg.index is not None:
                self._index = LuceneIndex.load(cfg.index)
            else:
                self._index = LuceneIndex.build(
                    self.dataset,
                    settings_=IndexSettings(multifield=cfg.multifield, threads=min(cfg.threads, 8)),
                    show_progress=cfg.show_progress,
                )
        return self._index

    def text_scorer(self) -> BM25TextScorer:
        """A :class:`~rankkit.index.lucene.BM25TextScorer` with this stage's index, k1 and b (made once, then reused).

        It scores a query against free text as this stage scores an indexed document (the score of a
        document's own text equals its hit's score within Anserini's 1e-4 rounding). Only for a
        single-field search of ``contents``: a multifield stage, or ``fields`` other than
        ``{contents: 1}``, raises :class:`ConfigError`.
        """
        cfg = self.config
        if cfg.multifield or self._fields() not in ({}, {"contents": 1.0}):
            raise ConfigError(f"{self.name}: a text scorer needs a single-field BM25 stage (contents only); this one "
                              f"searches fields {self._fields()} (multifield={cfg.multifield})")
        if self._text_scorer is None:
            self._text_scorer = BM25TextScorer(self.index, cfg.k1, cfg.b)
        return self._text_scorer

    def _fields(self) -> dict[str, float]:
        if self.config.fields:
            return dict(self.config.fields)
        if self.config.multifield:
            return {"contents": 1.0, "title": 1.0}
        return {}

    def _depth(self) -> int | None:
        depth = self.config.search_depth
        return depth if depth is not None and depth > self.config.hits else None

    def cache_spec(self) -> dict[str, Any] | None:
        cfg = self.config
        corpus = self.dataset.fingerprint() if self.dataset is not None else os.path.abspath(cfg.index or "")
        spec = {"corpus": corpus, "k1": cfg.k1, "b": cfg.b, "hits": cfg.hits, "multifield": cfg.multifield,
                "fields": self._fields(), "remove_query": self.remove_query}
        if self._depth() is not None:  # only when it matters, so keys of earlier caches stay valid
            spec["depth"] = self._depth()
        return spec

    def with_hits(self, k: int) -> Stage | None:
        """This stage returning the top ``k`` hits, exactly as ``self % k`` would (ties included).

        The copy has ``hits=k`` and ``search_depth`` = this stage's search depth (or hits), and shares
        the index and searcher already opened.
        """
        cfg = self.config
        if k >= cfg.hits:
            return self
        stage = BM25(self.dataset, config=dataclasses.replace(cfg, hits=k, search_depth=cfg.search_depth or cfg.hits))
        stage._index, stage._searcher = self._index, self._searcher
        return stage

    def _search(self, batch: list[Query], k: int) -> dict[str, tuple[dict[str, float], int, float | None]]:
        """Lucene's top ``k`` per query: (docs without the query itself if ``remove_query``, hits found, last score)."""
        cfg = self.config
        qids = [q.qid for q in batch]
        results = self._searcher.batch_search([q.text for q in batch], qids, k=k, threads=cfg.threads,
                                              fields=self._fields())
        out: dict[str, tuple[dict[str, float], int, float | None]] = {}
        for qid in qids:
            hits = results.get(qid, [])
            docs = {h.docid: h.score for h in hits if not (self.remove_query and h.docid == qid)}
            if len(docs) < len(hits):
                self._removed.add(qid)
            out[qid] = (docs, len(hits), hits[-1].score if hits else None)
        return out

    def _search_top(self, batch: list[Query], depth: int) -> dict[str, dict[str, float]]:
        """The top ``hits`` (in Run order) of each query's ``depth``-hit list, searching only as deep as needed.

        A ``d``-hit search is a prefix of the ``depth``-hit one (same documents, same
        scores), and scores never rise along it. So it suffices when it ran out of
        matches, or when the ``hits``-th best score is above its last score: no later hit
        can reach or tie it. Otherwise (a tie across the cutoff) the query is searched
        again, four times deeper (at most ``depth``).
        """
        k = self.config.hits
        d = min(depth, 2 * k + 10)
        out: dict[str, dict[str, float]] = {}
        pending = batch
        while pending:
            retry: list[Query] = []
            results = self._search(pending, d)
            for q in pending:
                docs, found, last = results[q.qid]
                ranked = rank_items(docs)
                if d >= depth or found < d or (len(ranked) >= k and last is not None and ranked[k - 1][1] > last):
                    out[q.qid] = dict(ranked[:k])
                else:
                    retry.append(q)
            if retry:
                log.debug("%s: %d queries tied at rank %d; searching %d deep", self.name, len(retry), k,
                          min(depth, 4 * d))
            pending, d = retry, min(depth, 4 * d)
        return out

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        cfg = self.config
        if self._searcher is None:
            self._searcher = self.index.searcher(cfg.k1, cfg.b)
        depth = self._depth()
        self._removed: set[str] = set()
        out: dict[str, dict[str, float]] = {}
        with tqdm(total=len(queries), desc=f"{self.name} search", unit="q", disable=not cfg.show_progress) as bar:
            for start in range(0, len(queries), cfg.batch_size):
                batch = queries[start : start + cfg.batch_size]
                if depth is None:
                    out.update({qid: docs for qid, (docs, _, _) in self._search(batch, cfg.hits).items()})
                else:
                    out.update(self._search_top(batch, depth))
                bar.update(len(batch))
        removed = len(self._removed)
        if self.remove_query:  # cumulative, like every stage's counters (blocks of one job sum up)
            self.stats["removed_query_hits"] = self.stats.get("removed_query_hits", 0) + removed
        if removed:
            log.info("%s: remove_query dropped %d hit(s) whose docid equals the query id (%d queries searched)",
                     self.name, removed, len(queries))
        return Run(out, name=self.name)


@register_stage("bm25", BM25Config)
def _bm25_from_config(cfg: BM25Config, dataset: Any, overrides: dict[str, Any]) -> BM25:
    return BM25(dataset, config=cfg)
