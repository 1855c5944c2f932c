"""BM25 retrieval through Pyserini's ``LuceneSearcher`` (Lucene, Anserini 1.7.1).

Defaults follow Pyserini's BEIR 2CR runs: k1=0.9, b=0.4, 1000 hits, and for
multifield indexes equal boosts on ``contents`` and ``title``. ``remove_query`` drops
a hit whose docid equals the qid, as Pyserini's ``--remove-query`` does (it matters
for collections such as ArguAna whose queries are corpus documents).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from rankkit.errors import ConfigError
from rankkit.index.lucene import IndexSettings, LuceneIndex
from rankkit.pipeline import Stage, register_stage
from rankkit.types import Query, Run

log = logging.getLogger(__name__)


@dataclass
class BM25Config:
    """Options of the BM25 stage (one source of truth for Python, YAML and CLI)."""

    k1: float = 0.9
    b: float = 0.4
    hits: int = 1000
    multifield: bool = False
    fields: dict[str, float] = field(default_factory=dict)
    remove_query: bool = False
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 64
    index: str | None = None
    show_progress: bool = True
    cache_dir: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.hits < 1:
            raise ValueError(f"hits must be >= 1, got {self.hits}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")


class BM25(Stage):
    """First-stage BM25 retriever over a Lucene index of a dataset's corpus.

    Give a :class:`~rankkit.data.dataset.Dataset` (its index is built or loaded from
    the cache) or an ``index`` path to an existing Pyserini/Anserini index. Searching
    is multi-threaded (``threads``) in batches of ``batch_size`` queries.
    """

    def __init__(self, dataset: Any = None, **options: Any) -> None:
        from rankkit.config import from_mapping

        self.config = options.pop("config", None) or from_mapping(BM25Config, options, "BM25")
        self.dataset = dataset
        if dataset is None and self.config.index is None:
            raise ConfigError("BM25 needs a dataset (to index its corpus) or an index path")
        self.name = self.config.name or ("bm25-mf" if self.config.multifield else "bm25")
        self.cache_dir = self.config.cache_dir  # type: ignore[assignment]
        self._index: LuceneIndex | None = None
        self._searcher: Any = None

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

    def _fields(self) -> dict[str, float]:
        if self.config.fields:
            return dict(self.config.fields)
        if self.config.multifield:
            return {"contents": 1.0, "title": 1.0}
        return {}

    def cache_spec(self) -> dict[str, Any] | None:
        cfg = self.config
        corpus = self.dataset.fingerprint() if self.dataset is not None else os.path.abspath(cfg.index or "")
        return {"corpus": corpus, "k1": cfg.k1, "b": cfg.b, "hits": cfg.hits, "multifield": cfg.multifield,
                "fields": self._fields(), "remove_query": cfg.remove_query}

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        cfg = self.config
        if self._searcher is None:
            self._searcher = self.index.searcher(cfg.k1, cfg.b)
        fields = self._fields()
        out: dict[str, dict[str, float]] = {}
        with tqdm(total=len(queries), desc=f"{self.name} search", unit="q", disable=not cfg.show_progress) as bar:
            for start in range(0, len(queries), cfg.batch_size):
                batch = queries[start : start + cfg.batch_size]
                qids = [q.qid for q in batch]
                results = self._searcher.batch_search(
                    [q.text for q in batch], qids, k=cfg.hits, threads=cfg.threads, fields=fields
                )
                for qid in qids:
                    docs: dict[str, float] = {}
                    for hit in results.get(qid, []):
                        docid = hit.docid
                        if cfg.remove_query and docid == qid:
                            continue
                        docs[docid] = hit.score
                    out[qid] = docs
                bar.update(len(batch))
        return Run(out, name=self.name)


@register_stage("bm25", BM25Config)
def _bm25_from_config(cfg: BM25Config, dataset: Any, overrides: dict[str, Any]) -> BM25:
    return BM25(dataset, config=cfg)
