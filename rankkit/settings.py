"""Where rankkit reads data and keeps its caches, from environment variables.

- ``RANKKIT_DATA_DIR``: a folder of local collections (e.g. ``beir/scifact``,
  ``classic/cranfield``) from which ir_datasets is primed offline.
- ``RANKKIT_CACHE_DIR``: indexes, embeddings and stage outputs (default
  ``~/.cache/rankkit``).
- ``IR_DATASETS_HOME``: ir_datasets' own download cache (its default ``~/.ir_datasets``).

Values are read at call time, so tests and the CLI can change them per process.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path | None:
    """The local data folder from ``RANKKIT_DATA_DIR``, or ``None`` when unset or absent."""
    value = os.environ.get("RANKKIT_DATA_DIR")
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_dir() else None


def cache_dir() -> Path:
    """rankkit's cache root (``RANKKIT_CACHE_DIR`` or ``~/.cache/rankkit``), created on demand."""
    value = os.environ.get("RANKKIT_CACHE_DIR") or os.path.join("~", ".cache", "rankkit")
    path = Path(value).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def ir_datasets_home() -> Path:
    """ir_datasets' cache folder (``IR_DATASETS_HOME`` or ``~/.ir_datasets``)."""
    return Path(os.environ.get("IR_DATASETS_HOME") or os.path.join("~", ".ir_datasets")).expanduser()
