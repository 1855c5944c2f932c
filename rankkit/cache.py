"""One content-keyed cache for runs and scores.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
