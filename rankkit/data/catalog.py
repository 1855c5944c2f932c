"""What can be loaded offline right now: the data dir plus ir_datasets' cache.

Data-dir entries come from :func:`rankkit.data.prime.local_sources`. Cache entries are
found by walking each registered dataset's docs, queries and qrels handlers for the
download/cache files ir_datasets would read and checking that they exist; only
dataset groups with files under ``$IR_DATASETS_HOME`` are walked, so the scan is cheap.
Counts come from ir_datasets' metadata (no corpus is scanned); a BEIR folder unknown
to ir_datasets gets query and judgement counts from its qrels file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from rankkit import settings, trec
from rankkit.data.irds import ir_datasets_module
from rankkit.data.prime import local_sources
from rankkit.errors import RankkitError

logger = logging.getLogger(__name__)

__all__ = ["available_datasets", "cached_ids"]

_HANDLERS = ("docs_handler", "queries_handler", "qrels_handler")


def _files(obj: Any, irds: Any, depth: int = 0, seen: set[int] | None = None) -> list[tuple[str, Path | None]]:
    """``("cache" | "download", path)`` for the Cache and Download objects reachable from ``obj``."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 8 or obj is None or isinstance(obj, (str, bytes, int, float, Path)):
        return []
    seen.add(id(obj))
    util = irds.util
    if isinstance(obj, util.Download):
        path = obj._cache_path  # noqa: SLF001 - ir_datasets exposes no public accessor
        return [("download", Path(path) if path else None)]
    found: list[tuple[str, Path | None]] = []
    if isinstance(obj, util.Cache):
        found.append(("cache", Path(obj._path)))  # noqa: SLF001
    if isinstance(obj, (list, tuple)):
        children: Any = obj
    elif isinstance(obj, dict):
        children = obj.values()
    else:
        children = getattr(obj, "__dict__", {}).values()
    for child in children:
        found.extend(_files(child, irds, depth + 1, seen))
    return found


def _present(handler: Any, irds: Any) -> bool:
    files = _files(handler, irds)
    if any(kind == "cache" and path is not None and path.exists() for kind, path in files):
        return True
    downloads = [path for kind, path in files if kind == "download"]
    return bool(downloads) and all(p is not None and p.exists() for p in downloads)


def _groups_with_files(home: Path) -> set[str]:
    groups = set()
    if home.is_dir():
        for entry in home.iterdir():
            if entry.is_dir() and entry.name not in {"tmp", "downloads"}:
                if any(f != "irds_version.txt" for _, _, files in os.walk(entry) for f in files):
                    groups.add(entry.name)
    return groups


def cached_ids() -> list[str]:
    """ir_datasets ids whose docs, queries and qrels sources are all in the cache."""
    irds = ir_datasets_module()
    groups = _groups_with_files(settings.ir_datasets_home())
    out = []
    for dataset_id in list(irds.registry):
        if dataset_id.split("/")[0] not in groups:
            continue
        try:
            ds = irds.registry[dataset_id]
            if not (ds.has_docs() and ds.has_queries() and ds.has_qrels()):
                continue
            if all(_present(getattr(ds, h)(), irds) for h in _HANDLERS):
                out.append(dataset_id)
        except Exception as exc:  # noqa: BLE001 - one odd dataset must not break the listing
            logger.debug("skipping %s: %s", dataset_id, exc)
    return out


def _counts(dataset_id: str, irds: Any) -> dict[str, int | None]:
    try:
        ds = irds.registry[dataset_id]
        return {"docs": ds.docs_count(), "queries": ds.queries_count(), "qrels": ds.qrels_count()}
    except Exception:  # noqa: BLE001 - unknown to ir_datasets or no metadata
        return {"docs": None, "queries": None, "qrels": None}


def available_datasets() -> list[dict[str, Any]]:
    """Datasets that load offline right now, sorted by id.

    Each entry has ``id`` (what to pass to :func:`rankkit.data.load_dataset`),
    ``source`` (``"data dir"`` or ``"ir_datasets cache"``), ``path`` and the counts
    ``docs``, ``queries``, ``qrels`` (``None`` where not cheaply known).
    """
    irds = ir_datasets_module()
    entries: dict[str, dict[str, Any]] = {}
    for src in local_sources():
        if not src.loadable:
            continue
        for dataset_id in src.ids():
            entry = {"id": dataset_id, "source": "data dir", "path": str(src.path), **_counts(dataset_id, irds)}
            if entry["queries"] is None and src.splits:
                try:
                    qrels = trec.read_qrels(src.path / "qrels" / f"{dataset_id.rsplit('/', 1)[1]}.tsv")
                except RankkitError as exc:  # listed without counts; loading it will raise the same error
                    logger.warning("cannot count %s: %s", dataset_id, exc)
                else:
                    entry.update(queries=len(qrels), qrels=sum(len(d) for d in qrels.values()))
            entries[dataset_id] = entry
    home = settings.ir_datasets_home()
    for dataset_id in cached_ids():
        if dataset_id not in entries:
            path = str(home / dataset_id.split("/")[0])
            counts = _counts(dataset_id, irds)
            entries[dataset_id] = {"id": dataset_id, "source": "ir_datasets cache", "path": path, **counts}
    return [entries[k] for k in sorted(entries)]
