"""One content-keyed cache for runs and scores.

:class:`PairScoreCache` keeps single (query, text) scores (the smoothed ranker of
:mod:`rankkit.robust.smoothing` scores thousands of perturbed texts per document).

A cache entry is a TREC run file at ``<root>/<kind>/<key>.trec`` where ``key`` is the
SHA-256 (first 32 hex digits) of a canonical JSON description of everything that
determines the content (:func:`content_key`): the stage's settings, model content
hashes, the queries and the incoming run's fingerprint. ``kind`` separates whole
stage outputs (``runs``) from raw scores that several outputs share (e.g.
``cross-encoder`` scores before interpolation). Entries are written atomically
(temp file, then rename), so a killed process never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from rankkit.types import Run

log = logging.getLogger(__name__)


def content_key(spec: Mapping[str, Any]) -> str:
    """A 32-hex-digit SHA-256 of ``spec`` as canonical JSON (sorted keys; non-JSON values as ``str``)."""
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class RunCache:
    """Runs cached under ``root/kind``, each keyed by :func:`content_key` of its spec."""

    def __init__(self, root: str | os.PathLike[str], kind: str = "runs") -> None:
        self.root = Path(root)
        self.kind = kind

    def path(self, spec: Mapping[str, Any]) -> Path:
        """Where the entry for ``spec`` lives (whether or not it exists)."""
        return self.root / self.kind / f"{content_key(spec)}.trec"

    def load(self, spec: Mapping[str, Any], name: str) -> Run | None:
        """The cached run for ``spec`` (named ``name``), or ``None`` when there is none."""
        path = self.path(spec)
        if not path.exists():
            return None
        log.info("%s: loading cached %s %s", name, self.kind, path)
        return Run.from_trec(path, name=name)

    def save(self, spec: Mapping[str, Any], run: Run, tag: str = "cache") -> Path:
        """Write ``run`` as the entry for ``spec`` (atomically); returns its path."""
        path = self.path(spec)
        run.to_trec(path, tag=tag)
        return path


class PairScoreCache:
    """Scores of (query, text) pairs for one scorer, so that no pair is ever scored twice.

    Held in memory, and with a ``root`` also in SQLite at ``<root>/pair-scores/<key>.sqlite``
    where ``key`` is :func:`content_key` of ``spec`` (what determines the scores: the model's
    content hash and settings). Each pair is keyed by the SHA-256 of its query and text.
    Entries are committed in batches, so a killed run keeps what it had scored.
    """

    def __init__(self, root: str | os.PathLike[str] | None, spec: Mapping[str, Any]) -> None:
        self.memory: dict[bytes, float] = {}
        self.scored = 0
        self.path = Path(root) / "pair-scores" / f"{content_key(spec)}.sqlite" if root is not None else None
        self._db: Any = None

    def _connect(self) -> Any:
        if self._db is None and self.path is not None:
            import sqlite3

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (pair BLOB PRIMARY KEY, score REAL NOT NULL)")
        return self._db

    @staticmethod
    def key(query: str, text: str) -> bytes:
        """The pair's key: SHA-256 of the query, a NUL byte and the text."""
        return hashlib.sha256(query.encode() + b"\0" + text.encode()).digest()

    def scores(self, query: str, texts: Sequence[str], scorer: Callable[[str, Sequence[str]], Any],
               batch: int = 1024) -> np.ndarray:
        """Scores of ``texts`` for ``query``: cached ones looked up, the rest scored by ``scorer`` once each."""
        import numpy as np

        keys = [self.key(query, t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.memory))
        db = self._connect()
        if missing and db is not None:
            for i in range(0, len(missing), 500):
                chunk = missing[i:i + 500]
                rows = db.execute(f"SELECT pair, score FROM scores WHERE pair IN ({','.join('?' * len(chunk))})",
                                  chunk).fetchall()
                self.memory.update({bytes(k): float(s) for k, s in rows})
            missing = [k for k in missing if k not in self.memory]
        if missing:
            text_of = dict(zip(keys, texts))
            for i in range(0, len(missing), batch):
                chunk = missing[i:i + batch]
                new = np.asarray(scorer(query, [text_of[k] for k in chunk]), dtype=np.float64)
                self.memory.update(zip(chunk, new.tolist()))
                self.scored += len(chunk)
                if db is not None:
                    db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)", zip(chunk, new.tolist()))
                    db.commit()
        return np.array([self.memory[k] for k in keys], dtype=np.float64)
