"""Dataset loading: ir_datasets ids, local BEIR folders and loose TREC files.

:func:`load_dataset` is the one entry point; it returns a :class:`Dataset` whatever
the source. ir_datasets ids load offline when ``RANKKIT_DATA_DIR`` holds the
collection (see :mod:`rankkit.data.prime`); :func:`available_datasets` lists what
loads offline right now.
"""

from __future__ import annotations

import os
from pathlib import Path

from rankkit import settings
from rankkit.data.beir import is_beir_folder, load_beir_folder
from rankkit.data.catalog import available_datasets
from rankkit.data.dataset import Dataset
from rankkit.data.files import load_trec_files
from rankkit.data.irds import ir_datasets_module, load_irds
from rankkit.data.prime import prime, prime_all, prime_beir_folder
from rankkit.errors import DatasetError

__all__ = [
    "Dataset",
    "available_datasets",
    "load_beir_folder",
    "load_dataset",
    "load_irds",
    "load_trec_files",
    "prime",
    "prime_all",
    "prime_beir_folder",
]

PathLike = str | os.PathLike[str]


def _local_beir(dataset_id: str) -> tuple[Path, str] | None:
    """A data-dir BEIR folder for ``beir/<name>[/<split>]`` that ir_datasets does not know."""
    parts = dataset_id.split("/")
    root = settings.data_dir()
    if root is None or parts[0] != "beir" or len(parts) not in (2, 3):
        return None
    try:
        ir_datasets_module().registry[dataset_id]
        return None
    except KeyError:
        pass
    folder = root / "beir" / parts[1]
    return (folder, parts[2] if len(parts) == 3 else "test") if is_beir_folder(folder) else None


def load_dataset(
    id_or_path: PathLike | None = None,
    split: str | None = None,
    *,
    queries: PathLike | None = None,
    qrels: PathLike | None = None,
    corpus: PathLike | None = None,
) -> Dataset:
    """Load a dataset from an ir_datasets id, a BEIR folder or TREC files.

    - With any of ``queries``/``qrels``/``corpus``: loose files (:func:`load_trec_files`).
      ``load_dataset(queries="topics.tsv", qrels="qrels.txt", corpus="docs.jsonl")``
      needs no positional argument (the dataset is named after the queries file). If
      ``queries`` is not given, ``id_or_path`` is the queries file; otherwise
      ``id_or_path`` is a folder that relative file names are resolved against, or
      just the dataset's name.
    - A folder holding ``corpus.jsonl``: a BEIR folder, split ``split`` (default ``"test"``).
    - Otherwise an ir_datasets id; ``split`` is appended (``load_dataset("beir/scifact",
      "test")`` is ``beir/scifact/test``). ``beir/<name>/<split>`` ids unknown to
      ir_datasets load from ``RANKKIT_DATA_DIR/beir/<name>/`` when present.

    Raises :class:`DatasetError` for an unknown id or path (or no source at all),
    :class:`FormatError` for bad files.
    """
    loose = queries is not None or qrels is not None or corpus is not None
    if id_or_path is None:
        if queries is None:
            what = "qrels=/corpus= files also need queries=" if loose else "nothing to load"
            raise DatasetError(
                f"load_dataset: {what}; pass an ir_datasets id, a BEIR folder, or queries= "
                "(with optional qrels= and corpus=) files"
            )
        return load_trec_files(queries, qrels, corpus)
    target = os.fspath(id_or_path)
    path = Path(target).expanduser()
    if loose:
        if queries is None:
            return load_trec_files(path, qrels, corpus)
        base = path if path.is_dir() else None

        def resolve(p: PathLike | None) -> Path | None:
            if p is None:
                return None
            q = Path(p).expanduser()
            return base / q if base is not None and not q.is_absolute() else q

        name = path.name if base is not None else target
        return load_trec_files(resolve(queries), resolve(qrels), resolve(corpus), name=name)  # type: ignore[arg-type]
    if path.is_dir():
        if is_beir_folder(path):
            return load_beir_folder(path, split or "test")
        raise DatasetError(
            f"{path} is a folder without corpus.jsonl: a BEIR folder needs corpus.jsonl, queries.jsonl and "
            "qrels/<split>.tsv; for other files pass queries=, qrels= and corpus="
        )
    if path.is_file():
        raise DatasetError(f"{path} is a file: pass it as queries= together with qrels= and corpus= files")
    dataset_id = f"{target.rstrip('/')}/{split}" if split else target
    local = _local_beir(dataset_id)
    if local is not None:
        return load_beir_folder(*local)
    return load_irds(dataset_id)
