"""Small readers shared by the dataset loaders: text files, JSONL, qrels checks.

Every reader reports problems as :class:`~rankkit.errors.FormatError` naming the file
and 1-based line, or :class:`~rankkit.errors.DatasetError` for a missing file, so a
user can fix the input without reading a traceback.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from rankkit.errors import DatasetError, FormatError
from rankkit.types import Qrels


def require_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a :class:`Path`, raising :class:`DatasetError` naming it when absent."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetError(f"{what} file not found: {p}")
    return p


def open_text(path: Path) -> TextIO:
    """Open a UTF-8 text file for reading, transparently decompressing ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def first_content_line(path: Path) -> str:
    """The first non-blank line of a file, stripped (``""`` for an empty file); used to sniff formats."""
    with open_text(path) as fh:
        for raw in fh:
            if raw.strip():
                return raw.strip()
    return ""


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    A line that is not valid JSON, or is JSON but not an object, raises
    :class:`FormatError` with the file and line.
    """
    with open_text(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise FormatError(f"malformed JSON ({exc.msg} at column {exc.colno})", path, lineno) from None
            if not isinstance(obj, dict):
                raise FormatError(f"expected a JSON object, found {type(obj).__name__}", path, lineno)
            yield lineno, obj


def get_field(obj: Mapping[str, Any], keys: Iterable[str], path: Path, line: int) -> str:
    """The value of the first of ``keys`` present in ``obj``, as a string.

    Raises :class:`FormatError` naming the file, line and the expected key(s) when
    none is present (or the value is null).
    """
    keys = list(keys)
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value if isinstance(value, str) else str(value)
    wanted = " or ".join(repr(k) for k in keys)
    raise FormatError(f"missing key {wanted}", path, line)


def check_qrels_queries(qrels: Mapping[str, Any], qids: Iterable[str], qrels_path: Path) -> None:
    """Raise :class:`FormatError` if the qrels judge queries absent from ``qids``.

    Delegates to :meth:`Qrels.check_queries`, adding the line of the first judgement
    of an unknown query in ``qrels_path`` (found only when there is an error).
    """
    known = set(qids)
    unknown = {q for q in qrels if q not in known}
    if unknown:
        Qrels(qrels).check_queries(known, qrels_path, _first_line_of(qrels_path, unknown))


def _first_line_of(path: Path, qids: set[str]) -> int | None:
    with open_text(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            parts = raw.split()
            if parts and parts[0] in qids:
                return lineno
    return None
