"""Word-substitution perturbation sets and the random substitution sampler of CertDR.

CertDR: Wu, Zhang, Guo, Chen, Fan, de Rijke and Cheng, "Certified Robustness to Word
Substitution Ranking Attack for Neural Ranking Models", CIKM 2022 (arXiv 2209.06691), whose
sets follow SAFER (Ye, Gong and Liu, ACL 2020).

**Sets.** The vocabulary is the corpus's lower-cased alphabetic words seen at least
``min_count`` times (the paper keeps words seen more than once), minus English stop words.
Two words are *neighbours* when one is a synonym of the other: WordNet lemmas sharing a
synset (``source: wordnet``), or words whose post-processed embeddings have cosine
similarity at least ``similarity`` (``source: embedding``, any rankkit encoder; vectors
normalised, centred and stripped of their top ``remove_components`` principal components,
the "all-but-the-top" post-processing the paper applies to counter-fitted vectors). The
neighbour graph's connected components of at most ``max_set`` words are used whole as each
member's perturbation set S(w); a word in a larger component gets ``{w} | N(w)``. A word
without neighbours is not perturbable.

**Sampler.** Each perturbable word of a document is replaced independently by a uniform
member of its set (itself included); case is carried over, punctuation, numbers and unknown
words are kept. Sample ``i`` of a text depends only on ``(seed, text, i)``, so the first 100
of 1,000 samples are the 100 samples, and a score cache shares them.

**Bound.** An attacker replaces a word w by one of its neighbours w'. The per-word overlap
``ov(w) = min over w' in N(w) of |S(w) & S(w')| / max(|S(w)|, |S(w')|)`` is one minus the
total-variation distance between the uniform distributions on S(w) and S(w') (1 for words
that are not perturbable, and for a whole component, where S(w') = S(w)). By a coupling of
the independent positions, the distributions of the randomised clean and attacked document
differ in total variation by at most ``o_d = 1 - prod_j ov(w_j)`` over d's words. (The
paper's table divides by |S(w)|, which overstates the overlap when |S(w')| > |S(w)|; the
maximum keeps the bound sound.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from rankkit.config import NonNegativeInt, PositiveInt, validate_fields
from rankkit.errors import ConfigError

log = logging.getLogger(__name__)

#: ``(query, texts) -> raw scores``: how a ranker scores a query against free texts (smoothing and attacks).
TextScorer = Callable[[str, Sequence[str]], np.ndarray]

#: Words are runs of ASCII letters; everything between them (spaces, punctuation, digits) is kept as is.
WORD = re.compile(r"([A-Za-z]+)")
TABLE_VERSION = 1


@dataclass(slots=True)
class PerturbConfig:
    """How perturbation sets are built (see the module docstring; defaults from the paper).

    ``source`` is ``wordnet`` or ``embedding``; ``min_count`` (>= 1) is the corpus frequency a
    word needs; ``max_set`` (>= 2) caps whole components (the paper's 100); ``stopwords``
    drops English stop words from the vocabulary; ``similarity`` (embedding only) is the cosine
    threshold tau, ``encoder`` the rankkit encoder (HF id or path) whose vectors are compared,
    and ``remove_components`` the number of principal components projected out.
    """

    source: Literal["wordnet", "embedding"] = "wordnet"
    min_count: PositiveInt = 2
    max_set: Annotated[int, Field(ge=2)] = 100
    stopwords: bool = True
    similarity: Annotated[float, Field(gt=-1.0, le=1.0)] = 0.9
    encoder: Annotated[str, Field(min_length=1)] = "sentence-transformers/all-MiniLM-L6-v2"
    remove_components: NonNegativeInt = 8

    def __post_init__(self) -> None:
        validate_fields(self, "perturbation")


def words_of(text: str) -> list[str]:
    """The alphabetic words of ``text``, in order (the units that are substituted)."""
    return WORD.findall(text)


def vocabulary(texts: Iterable[str], min_count: int = 2, stopwords: bool = True) -> Counter[str]:
    """Lower-cased word counts over ``texts``, keeping words seen at least ``min_count`` times."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w.lower() for w in words_of(text))
    drop = _stopwords() if stopwords else frozenset()
    return Counter({w: c for w, c in counts.items() if c >= min_count and w not in drop and len(w) > 1})


def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@dataclass(frozen=True)
class PerturbationTable:
    """Perturbation sets S(w), neighbours N(w) and overlaps ov(w) of the perturbable words.

    Build one with :func:`build_table` (or :meth:`from_neighbours` from any symmetric
    neighbour graph), store it with :meth:`save` and read it with :meth:`load`.
    """

    sets: Mapping[str, tuple[str, ...]]
    neighbours: Mapping[str, tuple[str, ...]]
    overlap: Mapping[str, float]
    meta: Mapping[str, Any]

    @classmethod
    def from_neighbours(cls, graph: Mapping[str, Iterable[str]], max_set: int = 100,
                        meta: Mapping[str, Any] | None = None) -> PerturbationTable:
        """Sets from a neighbour graph (made symmetric; self-loops dropped): whole components up
        to ``max_set`` words, otherwise the word with its own neighbours."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        nbrs: dict[str, set[str]] = {}
        for w, ns in graph.items():
            for n in ns:
                if n != w:
                    nbrs.setdefault(w, set()).add(n)
                    nbrs.setdefault(n, set()).add(w)
        words = sorted(nbrs)
        index = {w: i for i, w in enumerate(words)}
        rows = [index[w] for w in words for _ in nbrs[w]]
        cols = [index[n] for w in words for n in nbrs[w]]
        adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(words), len(words)))
        _, label = connected_components(adj, directed=False)
        members: dict[int, list[str]] = {}
        for w in words:
            members.setdefault(int(label[index[w]]), []).append(w)
        sets: dict[str, tuple[str, ...]] = {}
        for w in words:
            comp = members[int(label[index[w]])]
            sets[w] = tuple(comp) if len(comp) <= max_set else tuple(sorted(nbrs[w] | {w}))
        overlap = {w: min(len(set(sets[w]) & set(sets[n])) / max(len(sets[w]), len(sets[n])) for n in nbrs[w])
                   for w in words}
        return cls(sets, {w: tuple(sorted(nbrs[w])) for w in words}, overlap, dict(meta or {}))

    def __len__(self) -> int:
        return len(self.sets)

    def overlap_of(self, word: str) -> float:
        """ov(w) of a word as it appears in a text (1 when it is not perturbable)."""
        return self.overlap.get(word.lower(), 1.0)

    def bound(self, text: str) -> float:
        """o_d = 1 - prod_j ov(w_j): the total-variation bound of ``text`` (in [0, 1])."""
        log_keep = sum(np.log(self.overlap_of(w)) for w in words_of(text) if w.lower() in self.overlap)
        return float(min(1.0, max(0.0, 1.0 - np.exp(log_keep))))

    def perturbable(self, text: str) -> int:
        """How many of ``text``'s words have a perturbation set."""
        return sum(1 for w in words_of(text) if w.lower() in self.sets)

    def stats(self) -> dict[str, Any]:
        """Counts a report shows: perturbable words, whole components, mean set size and overlap."""
        sizes = [len(s) for s in self.sets.values()]
        whole = sum(1 for v in self.overlap.values() if v == 1.0)
        return {"perturbable_words": len(self.sets), "overlap_one": whole,
                "mean_set_size": float(np.mean(sizes)) if sizes else 0.0,
                "mean_overlap": float(np.mean(list(self.overlap.values()))) if self.overlap else 1.0}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as JSON (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {"version": TABLE_VERSION, "meta": dict(self.meta), "sets": dict(self.sets),
                "neighbours": dict(self.neighbours), "overlap": dict(self.overlap)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(blob, f)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PerturbationTable:
        """Read a table written by :meth:`save` (errors name the file)."""
        try:
            blob = json.loads(Path(path).read_text())
            if blob.get("version") != TABLE_VERSION:
                raise ValueError(f"version {blob.get('version')!r}, expected {TABLE_VERSION}")
            sets = {w: tuple(s) for w, s in blob["sets"].items()}
            neighbours = {w: tuple(s) for w, s in blob["neighbours"].items()}
            overlap = {w: float(v) for w, v in blob["overlap"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"{path}: not a rankkit perturbation table ({e})") from e
        return cls(sets, neighbours, overlap, blob.get("meta", {}))


def wordnet_graph(vocab: Iterable[str]) -> dict[str, set[str]]:
    """WordNet neighbours within ``vocab``: lemmas sharing a synset with the word."""
    from rankkit.robust.wordnet import load_wordnet, wordnet_synonyms

    reader = load_wordnet()
    allowed = set(vocab)
    return {w: wordnet_synonyms(w, reader) & allowed for w in sorted(allowed)}


def embedding_graph(vocab: Sequence[str], vectors: np.ndarray, similarity: float,
                    remove_components: int = 8) -> dict[str, set[str]]:
    """Neighbours within ``vocab`` whose post-processed vectors have cosine >= ``similarity``."""
    import faiss

    x = np.asarray(vectors, dtype=np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x -= x.mean(axis=0)
    k = min(remove_components, max(0, min(x.shape) - 1))
    if k:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        x -= (x @ vt[:k].T) @ vt[:k]
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(x.shape[1])
    xf = np.ascontiguousarray(x, dtype=np.float32)
    index.add(xf)
    lims, _, ids = index.range_search(xf, float(similarity) - 1e-6)
    return {vocab[i]: {vocab[j] for j in ids[lims[i]:lims[i + 1]] if j != i} for i in range(len(vocab))}


def build_table(texts: Iterable[str], config: PerturbConfig | None = None,
                encode: Callable[[list[str]], np.ndarray] | None = None) -> PerturbationTable:
    """The perturbation table of a corpus (its documents' texts) under ``config``.

    ``encode`` (embedding source) maps words to vectors; by default the config's encoder.
    """
    cfg = config or PerturbConfig()
    counts = vocabulary(texts, cfg.min_count, cfg.stopwords)
    if not counts:
        raise ConfigError(f"no word occurs {cfg.min_count}+ times in the corpus: nothing can be perturbed")
    vocab = sorted(counts)
    if cfg.source == "wordnet":
        graph = wordnet_graph(vocab)
    else:
        if encode is None:
            from rankkit.retrieve.dense import Encoder

            encoder = Encoder(cfg.encoder, show_progress=False)
            encode = encoder.encode
        graph = embedding_graph(vocab, encode(vocab), cfg.similarity, cfg.remove_components)
    table = PerturbationTable.from_neighbours(graph, cfg.max_set, meta={"config": asdict(cfg),
                                                                        "vocabulary": len(vocab)})
    log.info("perturbation sets (%s): %d of %d vocabulary words perturbable", cfg.source, len(table), len(vocab))
    return table


def case_like(word: str, model: str) -> str:
    """``word`` in the case pattern of ``model`` (UPPER, Title or lower)."""
    if len(model) > 1 and model.isupper():
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _text_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class Substituter:
    """The random substitution distribution Pi(d) of a :class:`PerturbationTable` (module docstring)."""

    def __init__(self, table: PerturbationTable, seed: int = 0) -> None:
        self.table = table
        self.seed = seed

    def split(self, text: str) -> tuple[list[str], list[int]]:
        """``text`` as pieces (alternating separators and words) and the indices of perturbable words."""
        pieces = WORD.split(text)
        slots = [i for i in range(1, len(pieces), 2) if pieces[i].lower() in self.table.sets]
        return pieces, slots

    def sample(self, text: str, n: int, start: int = 0) -> list[str]:
        """Samples ``start .. start + n - 1`` of Pi(text) (seeded by ``(seed, text)``)."""
        if n < 0 or start < 0:
            raise ValueError("n and start must be >= 0")
        pieces, slots = self.split(text)
        if not slots:
            return [text] * n
        sets = [self.table.sets[pieces[i].lower()] for i in slots]
        sizes = np.array([len(s) for s in sets])
        rng = np.random.default_rng([self.seed, _text_seed(text)])
        if start:
            rng.random((start, len(slots)))  # skip the earlier samples: sample i depends on i only
        choice = np.minimum((rng.random((n, len(slots))) * sizes).astype(np.int64), sizes - 1)
        out = []
        for row in choice:
            new = list(pieces)
            for i, c, s in zip(slots, row, sets):
                new[i] = case_like(s[c], pieces[i])
            out.append("".join(new))
        return out
