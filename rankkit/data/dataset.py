"""The :class:`Dataset` value: a corpus, a query set and its qrels.

A dataset streams its corpus (collections can be large), keeps queries and qrels
in memory, looks documents up by id for rerankers, and has a content fingerprint
that keys every on-disk cache built from its corpus (indexes, embeddings).

``remove_query`` records a collection convention: whether a retrieved document whose
id equals the query id should be dropped (BEIR's convention, which Pyserini's BEIR
regressions follow; see :data:`rankkit.data.beir.BEIR_DATASETS`). BM25's
``remove_query: auto`` reads it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from rankkit.errors import DatasetError
from rankkit.types import Document, Qrels, Query


class Dataset:
    """A test collection: corpus (streamed), queries and qrels.

    ``docs`` is a zero-argument callable returning a fresh document iterator (so the
    corpus can be read more than once without holding it in memory). ``lookup``
    optionally fetches documents by id without a full scan (e.g. an ir_datasets
    docstore); otherwise the corpus is loaded into a dict on first lookup.
    """

    def __init__(
        self,
        name: str,
        docs: Callable[[], Iterable[Document]],
        queries: Sequence[Query],
        qrels: Qrels | None = None,
        *,
        docs_count: int | None = None,
        lookup: Callable[[Sequence[str]], Mapping[str, Document]] | None = None,
        remove_query: bool = False,
    ) -> None:
        self.name = name
        self.remove_query = remove_query
        self._docs = docs
        self.queries: list[Query] = list(queries)
        self.qrels: Qrels = qrels if qrels is not None else Qrels()
        self._docs_count = docs_count
        self._lookup = lookup
        self._store: dict[str, Document] | None = None
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, docs={self.docs_count()}, queries={len(self.queries)}, "
            f"qrels={self.qrels.num_judgements})"
        )

    def docs_iter(self) -> Iterator[Document]:
        """Iterate over the corpus, in its stored order."""
        return iter(self._docs())

    def docs_count(self) -> int:
        """Number of documents in the corpus (counted by a scan when unknown)."""
        if self._docs_count is None:
            self._docs_count = sum(1 for _ in self.docs_iter())
        return self._docs_count

    def docs(self, docids: Sequence[str]) -> dict[str, Document]:
        """Look documents up by id; an unknown id (or a corpus repeating one) raises :class:`DatasetError`."""
        if self._lookup is not None:
            found = dict(self._lookup(docids))
        else:
            if self._store is None:
                store: dict[str, Document] = {}
                for d in self.docs_iter():
                    if d.docid in store:
                        raise DatasetError(f"dataset {self.name!r} has document id {d.docid!r} twice")
                    store[d.docid] = d
                self._store = store
            found = {d: self._store[d] for d in docids if d in self._store}
        missing = [d for d in docids if d not in found]
        if missing:
            raise DatasetError(f"dataset {self.name!r} has no document(s) {missing[:5]}")
        return found

    def query_texts(self) -> dict[str, str]:
        """``{qid: text}`` for all queries."""
        return {q.qid: q.text for q in self.queries}

    def fingerprint(self) -> str:
        """SHA-256 over every (docid, title, text) in corpus order; keys on-disk caches.

        Strings are hashed as UTF-8 (lone surrogates, which rankkit's readers refuse but
        other sources may carry, are passed through rather than crashing).
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            for doc in self.docs_iter():
                h.update(doc.docid.encode("utf-8", "surrogatepass"))
                h.update(b"\x1f")
                h.update(doc.title.encode("utf-8", "surrogatepass"))
                h.update(b"\x1f")
                h.update(doc.text.encode("utf-8", "surrogatepass"))
                h.update(b"\x1e")
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def subset(self, num_queries: int | None = None, qids: Iterable[str] | None = None) -> Dataset:
        """The same corpus with the first ``num_queries`` queries (or the listed ``qids``)."""
        if qids is not None:
            keep = set(qids)
            queries = [q for q in self.queries if q.qid in keep]
        else:
            queries = self.queries[:num_queries]
        out = Dataset(
            f"{self.name}[{len(queries)}q]",
            self._docs,
            queries,
            self.qrels.restrict(q.qid for q in queries),
            docs_count=self._docs_count,
            lookup=self._lookup,
            remove_query=self.remove_query,
        )
        out._fingerprint, out._store = self._fingerprint, self._store
        return out

    def slice(self, num_queries: int, extra_docs: int = 0) -> Dataset:
        """A small self-contained collection for tests and smoke runs.

        Keeps the first ``num_queries`` judged queries, every document judged for them,
        and the first ``extra_docs`` other documents of the corpus as distractors.
        """
        queries = [q for q in self.queries if q.qid in self.qrels][:num_queries]
        qrels = self.qrels.restrict(q.qid for q in queries)
        judged = {d for q in qrels for d in qrels[q]}
        docs: list[Document] = []
        extra = 0
        for doc in self.docs_iter():
            if doc.docid in judged:
                docs.append(doc)
            elif extra < extra_docs:
                docs.append(doc)
                extra += 1
        return Dataset(
            f"{self.name}[{len(queries)}q,{len(docs)}d]", lambda: iter(docs), queries, qrels, docs_count=len(docs),
            remove_query=self.remove_query,
        )
