"""Offline priming: place local copies of collections where ir_datasets looks for them.

ir_datasets keeps each download at a fixed path under ``$IR_DATASETS_HOME`` and uses a
file found there without checking its md5. So a collection kept under
``RANKKIT_DATA_DIR`` becomes loadable offline by building the expected source file:

- ``beir/<name>/`` (corpus.jsonl, queries.jsonl, qrels/*.tsv) -> ``beir/<name>/source.zip``
  with members ``<name>/corpus.jsonl``, ``<name>/queries.jsonl``, ``<name>/qrels/<split>.tsv``;
- ``classic/cranfield/cran.tar.gz`` (or its members) -> ``cranfield/cran.tar.gz``;
- ``classic/vaswani/`` (doc-text, query-text, rlv-ass, or npl.tar.gz) -> ``vaswani/npl.tar.gz``;
- ``trec-dl-2019/2019qrels-pass.txt`` -> ``msmarco-passage/trec-dl-2019/qrels`` (qrels only:
  the queries and passages still need a download).

Files are written atomically (temporary file, then rename) and never overwritten.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rankkit import settings, trec
from rankkit.data.beir import beir_splits, is_beir_folder
from rankkit.errors import DatasetError

logger = logging.getLogger(__name__)

__all__ = ["LocalSource", "local_sources", "prime", "prime_all", "prime_beir_folder", "source_for"]


@dataclass(frozen=True)
class LocalSource:
    """A collection under the data dir and the ir_datasets source file it can stand in for.

    ``prefix`` is the ir_datasets id it serves (and every id below it), ``target`` the
    path relative to ``$IR_DATASETS_HOME``, ``splits`` the BEIR qrels splits (if any),
    and ``loadable`` whether the ids load fully offline once primed.
    """

    prefix: str
    path: Path
    target: str
    build: Callable[[IO[bytes]], None] = field(repr=False, compare=False)
    splits: tuple[str, ...] = ()
    loadable: bool = True

    def serves(self, dataset_id: str) -> bool:
        """Whether ``dataset_id`` is this source's prefix or an id below it."""
        return dataset_id == self.prefix or dataset_id.startswith(self.prefix + "/")

    def ids(self) -> list[str]:
        """The dataset ids this source makes loadable (``<prefix>/<split>`` for BEIR splits)."""
        return [f"{self.prefix}/{s}" for s in self.splits] if self.splits else [self.prefix]


def _zip_beir(folder: Path, name: str) -> Callable[[IO[bytes]], None]:
    def build(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(folder / "corpus.jsonl", f"{name}/corpus.jsonl")
            zf.write(folder / "queries.jsonl", f"{name}/queries.jsonl")
            for split in beir_splits(folder):
                zf.write(folder / "qrels" / f"{split}.tsv", f"{name}/qrels/{split}.tsv")

    return build


def _tar_members(folder: Path, members: tuple[str, ...]) -> Callable[[IO[bytes]], None]:
    def build(fh: IO[bytes]) -> None:
        with tarfile.open(fileobj=fh, mode="w:gz") as tf:
            for member in members:
                tf.add(folder / member, arcname=member)

    return build


def _copy(src: Path) -> Callable[[IO[bytes]], None]:
    def build(fh: IO[bytes]) -> None:
        with open(src, "rb") as inp:
            shutil.copyfileobj(inp, fh)

    return build


def _classic(root: Path, prefix: str, archive: str, members: tuple[str, ...]) -> LocalSource | None:
    if (root / archive).is_file():
        return LocalSource(prefix, root / archive, f"{prefix}/{archive}", _copy(root / archive))
    if root.is_dir() and all((root / m).is_file() for m in members):
        return LocalSource(prefix, root, f"{prefix}/{archive}", _tar_members(root, members))
    return None


def local_sources(data_dir: Path | None = None) -> list[LocalSource]:
    """The collections found under ``data_dir`` (default :func:`rankkit.settings.data_dir`)."""
    root = data_dir if data_dir is not None else settings.data_dir()
    if root is None:
        return []
    out: list[LocalSource] = []
    beir_root = root / "beir"
    if beir_root.is_dir():
        for folder in sorted(p for p in beir_root.iterdir() if p.is_dir()):
            if is_beir_folder(folder) and (folder / "queries.jsonl").is_file() and beir_splits(folder):
                out.append(
                    LocalSource(
                        f"beir/{folder.name}",
                        folder,
                        f"beir/{folder.name}/source.zip",
                        _zip_beir(folder, folder.name),
                        splits=tuple(beir_splits(folder)),
                    )
                )
    classic = root / "classic"
    for spec in (
        ("cranfield", "cran.tar.gz", ("cran.all.1400", "cran.qry", "cranqrel")),
        ("vaswani", "npl.tar.gz", ("doc-text", "query-text", "rlv-ass")),
    ):
        src = _classic(classic / spec[0], *spec)
        if src is not None:
            out.append(src)
    dl19 = root / "trec-dl-2019" / "2019qrels-pass.txt"
    if dl19.is_file():
        out.append(
            LocalSource(
                "msmarco-passage/trec-dl-2019", dl19, "msmarco-passage/trec-dl-2019/qrels", _copy(dl19), loadable=False
            )
        )
    return out


def source_for(dataset_id: str, data_dir: Path | None = None) -> LocalSource | None:
    """The local source that serves ``dataset_id``, or ``None``."""
    return next((s for s in local_sources(data_dir) if s.serves(dataset_id)), None)


def _place(source: LocalSource, home: Path) -> bool:
    target = home / source.target
    if target.exists():
        return False
    with trec.atomic_write(target, "wb") as fh:
        source.build(fh)
    logger.info("primed ir_datasets cache %s from %s", target, source.path)
    return True


def prime(dataset_id: str) -> bool:
    """Make ``dataset_id`` loadable offline from the data dir; return whether a file was written.

    If ``RANKKIT_DATA_DIR`` holds the collection and ``$IR_DATASETS_HOME`` lacks the
    source file ir_datasets expects, build it there atomically. Returns ``False`` when
    the data dir has nothing for this id or the file is already in place.
    """
    source = source_for(dataset_id)
    return source is not None and _place(source, settings.ir_datasets_home())


def prime_all() -> list[str]:
    """Prime every collection found in the data dir; return the prefixes that were written."""
    home = settings.ir_datasets_home()
    return [s.prefix for s in local_sources() if _place(s, home)]


def prime_beir_folder(path: str | os.PathLike[str], name: str | None = None, overwrite: bool = False) -> Path:
    """Prime ir_datasets' ``beir/<name>`` from any local BEIR folder; return the zip's path.

    ``name`` defaults to the folder name and must be the BEIR name ir_datasets uses
    (e.g. ``nfcorpus``). An existing source file is kept unless ``overwrite``.
    """
    folder = Path(path).expanduser()
    if not is_beir_folder(folder) or not (folder / "queries.jsonl").is_file():
        raise DatasetError(f"{folder} is not a BEIR folder (needs corpus.jsonl, queries.jsonl, qrels/*.tsv)")
    name = name or folder.name
    target = settings.ir_datasets_home() / "beir" / name / "source.zip"
    if target.exists() and not overwrite:
        return target
    if target.exists():  # drop ir_datasets' caches derived from the old zip (queries.json, *.qrels, docs.pklz4)
        for stale in target.parent.iterdir():
            if stale.name not in {"queries.json", "docs.pklz4"} and stale.suffix != ".qrels":
                continue
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
    with trec.atomic_write(target, "wb") as fh:
        _zip_beir(folder, name)(fh)
    logger.info("primed ir_datasets cache %s from %s", target, folder)
    return target
