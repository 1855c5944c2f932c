"""Core value types: Query, Document, Run, Qrels, TrainingGroup.

A :class:`Run` is an immutable mapping ``qid -> {docid: score}``. Ranks are implied by
score; ties are broken by docid in *descending* string order, which is the order
trec_eval uses, so a cutoff taken here and a metric computed by trec_eval or ranx see
the same ranked list. TREC files are the interchange format on disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rankkit import trec
from rankkit.errors import FormatError

if TYPE_CHECKING:  # ranx imports numba; keep `import rankkit` light
    import ranx


@dataclass(frozen=True)
class Query:
    """A query: an id and its text."""

    qid: str
    text: str


@dataclass(frozen=True)
class Document:
    """A document: an id, its body text and an optional title."""

    docid: str
    text: str
    title: str = ""

    @property
    def contents(self) -> str:
        """Title and text joined by a space (the "flat" view used by BEIR baselines)."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


def _score(item: tuple[str, float]) -> float:
    return item[1]


def _docid(item: tuple[str, float]) -> str:
    return item[0]


def rank_items(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """Return ``(docid, score)`` pairs in rank order: score descending, ties by docid descending.

    One C-level sort by score, then docids are compared only inside runs of equal scores
    (trec_eval's tie-break), so the cost does not grow with the length of the ids unless
    they tie, and no id is copied.
    """
    items = sorted(docs.items(), key=_score, reverse=True)
    start, n = 0, len(items)
    while start < n:
        end, score = start + 1, items[start][1]
        while end < n and items[end][1] == score:
            end += 1
        if end - start > 1:
            items[start:end] = sorted(items[start:end], key=_docid, reverse=True)
        start = end
    return items


class _Nested(Mapping[str, Mapping[str, Any]]):
    """Shared read-only behaviour of :class:`Run` and :class:`Qrels` (``qid -> {docid: value}``)."""

    __slots__ = ("_data",)
    _data: dict[str, dict[str, Any]]

    def __getitem__(self, qid: str) -> Mapping[str, Any]:
        return MappingProxyType(self._data[qid])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return self._data == other._data  # type: ignore[attr-defined]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A plain (mutable) copy as nested dicts."""
        return {q: dict(d) for q, d in self._data.items()}


class Run(_Nested):
    """An immutable ranked result set: ``qid -> {docid: score}``.

    Construct from any nested mapping; scores are converted to float. Iteration
    order over queries is the insertion order of the input. ``name`` labels the run
    in reports and TREC files.
    """

    __slots__ = ("name", "_hash")

    def __init__(self, data: Mapping[str, Mapping[str, float]] | None = None, name: str = "run") -> None:
        self._data: dict[str, dict[str, float]] = {
            str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in (data or {}).items()
        }
        self.name = name
        self._hash: str | None = None

    def __repr__(self) -> str:
        n = sum(len(d) for d in self._data.values())
        return f"Run(name={self.name!r}, queries={len(self)}, entries={n})"

    def ranked(self, qid: str) -> list[tuple[str, float]]:
        """The ``(docid, score)`` list of one query in rank order."""
        return rank_items(self._data[qid])

    def top_k(self, k: int) -> Run:
        """A new run keeping the ``k`` best documents of each query."""
        if k < 1:
            raise ValueError(f"top_k needs k >= 1, got {k}")
        return Run({q: dict(rank_items(d)[:k]) for q, d in self._data.items()}, name=self.name)

    def with_name(self, name: str) -> Run:
        """The same run under another name."""
        return Run(self._data, name=name)

    def fingerprint(self) -> str:
        """A SHA-256 over the run's content (order independent), used as a cache key."""
        if self._hash is None:
            h = hashlib.sha256()
            for qid in sorted(self._data):
                for docid, score in sorted(self._data[qid].items()):
                    h.update(f"{qid}\t{docid}\t{score!r}\n".encode())
            self._hash = h.hexdigest()
        return self._hash

    def to_trec(self, path: str | os.PathLike[str], tag: str | None = None) -> None:
        """Write the run as a six-column TREC file (atomically)."""
        trec.write_run({q: self.ranked(q) for q in self._data}, path, tag=tag or self.name)

    @classmethod
    def from_trec(cls, path: str | os.PathLike[str], name: str | None = None) -> Run:
        """Read a TREC run file; malformed lines raise :class:`FormatError` with file and line."""
        return cls(trec.read_run(path), name=name or os.path.splitext(os.path.basename(path))[0])

    def to_ranx(self) -> ranx.Run:
        """Convert to a :class:`ranx.Run` carrying the same name."""
        import ranx

        run = ranx.Run.from_dict(self.to_dict()) if self._data else ranx.Run()
        run.name = self.name
        return run

    @classmethod
    def from_ranx(cls, run: ranx.Run, name: str | None = None) -> Run:
        """Build a run from a :class:`ranx.Run`."""
        return cls(run.to_dict(), name=name or run.name or "run")

    @classmethod
    def concat(cls, runs: Iterable[Run], name: str | None = None) -> Run:
        """Merge runs over disjoint query sets (e.g. shards) into one run."""
        merged: dict[str, dict[str, float]] = {}
        first = None
        for run in runs:
            first = first or run
            for qid, docs in run._data.items():
                if qid in merged:
                    raise ValueError(f"query {qid!r} appears in more than one shard")
                merged[qid] = docs
        return cls(merged, name=name or (first.name if first else "run"))


class Qrels(_Nested):
    """Relevance judgements: ``qid -> {docid: grade}`` (grade 0 means judged non-relevant)."""

    __slots__ = ()

    def __init__(self, data: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self._data: dict[str, dict[str, int]] = {
            str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in (data or {}).items()
        }

    def __repr__(self) -> str:
        return f"Qrels(queries={len(self)}, judgements={self.num_judgements})"

    @property
    def num_judgements(self) -> int:
        """Total number of (qid, docid) judgements."""
        return sum(len(d) for d in self._data.values())

    def relevant(self, qid: str, min_grade: int = 1) -> list[str]:
        """Docids judged at least ``min_grade`` for a query (empty if the query is unjudged)."""
        return [d for d, g in self._data.get(qid, {}).items() if g >= min_grade]

    def restrict(self, qids: Iterable[str]) -> Qrels:
        """Qrels limited to the given queries."""
        keep = set(qids)
        return Qrels({q: d for q, d in self._data.items() if q in keep})

    def check_queries(self, qids: Iterable[str], source: object = "qrels", line: int | None = None) -> None:
        """Raise :class:`FormatError` naming ``source`` (and ``line``) if any judged query is not among ``qids``."""
        known = set(qids)
        unknown = [q for q in self._data if q not in known]
        if unknown:
            shown = ", ".join(repr(q) for q in unknown[:5])
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            noun = "query" if len(unknown) == 1 else "queries"
            raise FormatError(f"qrels judge {len(unknown)} {noun} not in the queries: {shown}{more}", source, line)

    def to_trec(self, path: str | os.PathLike[str]) -> None:
        """Write four-column TREC qrels (atomically)."""
        trec.write_qrels(self._data, path)

    @classmethod
    def from_trec(cls, path: str | os.PathLike[str]) -> Qrels:
        """Read TREC qrels or BEIR TSV qrels; errors name the file and line."""
        return cls(trec.read_qrels(path))

    def to_ranx(self) -> ranx.Qrels:
        """Convert to a :class:`ranx.Qrels`; negative grades (e.g. Cranfield's -1) become 0, non-relevant."""
        import ranx

        return ranx.Qrels.from_dict({q: {d: max(g, 0) for d, g in docs.items()} for q, docs in self._data.items()})


@dataclass(frozen=True)
class TrainingGroup:
    """One training example for a reranker: a query, candidate documents and their labels.

    ``weights`` are optional per-document loss weights; ``difficulty`` optional
    per-document first-stage difficulty scores in [0, 1] (curriculum learning); ``scores``
    the first stage's scores of the documents (candidate-list groups: TSPRank's features).
    """

    query: Query
    docs: Sequence[Document]
    labels: Sequence[float]
    weights: Sequence[float] = field(default_factory=tuple)
    difficulty: Sequence[float] = field(default_factory=tuple)
    scores: Sequence[float] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.docs) != len(self.labels):
            raise ValueError(
                f"group for query {self.query.qid!r}: {len(self.docs)} docs but {len(self.labels)} labels"
            )


def as_queries(items: Iterable[Query | tuple[str, str]] | Mapping[str, str], source: Any = "queries") -> list[Query]:
    """Normalise queries given as :class:`Query`, ``(qid, text)`` pairs or a ``{qid: text}`` mapping.

    Raises :class:`FormatError` naming ``source`` and the qid for an empty query text.
    """
    if isinstance(items, Mapping):
        items = list(items.items())
    out: list[Query] = []
    for item in items:
        q = item if isinstance(item, Query) else Query(str(item[0]), str(item[1]))
        if not q.text.strip():
            raise FormatError(f"query {q.qid!r} has empty text", source)
        out.append(q)
    return out
