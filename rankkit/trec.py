"""Reading and writing TREC run and qrels files, and atomic file writes.

TREC is rankkit's on-disk interchange format. Parsers are strict: a malformed line
raises :class:`~rankkit.errors.FormatError` naming the file and line, and a docid that
appears twice for the same query in a run is an error (trec_eval would silently
count it twice). Writers go through :func:`atomic_write`, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from rankkit.errors import FormatError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it over ``path`` on success.

    If the body raises, the temporary file is removed and ``path`` is untouched, so
    readers only ever see a complete file or the previous one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` that replaces ``path`` (and whatever was there) on success.

    If the body raises, the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    if not path.exists():
        raise FormatError("file not found", path)
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            parts = raw.split()
            if parts:
                yield lineno, parts


def read_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Parse a six-column TREC run file (``qid Q0 docid rank score tag``).

    Raises :class:`FormatError` for a wrong column count, a non-numeric or non-finite
    score, or a docid repeated within one query; the message gives file and line.
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    first_seen: dict[tuple[str, str], int] = {}
    for lineno, parts in _lines(path):
        if len(parts) != 6:
            raise FormatError(
                f"expected 6 columns (qid Q0 docid rank score tag), found {len(parts)}",
                path,
                lineno,
            )
        qid, _, docid, _, score_s, _ = parts
        try:
            score = float(score_s)
        except ValueError:
            raise FormatError(f"score {score_s!r} is not a number", path, lineno) from None
        if not math.isfinite(score):
            raise FormatError(f"score {score_s!r} is not finite", path, lineno)
        key = (qid, docid)
        if key in first_seen:
            raise FormatError(
                f"docid {docid!r} appears twice for query {qid!r} "
                f"(first on line {first_seen[key]})",
                path,
                lineno,
            )
        first_seen[key] = lineno
        run.setdefault(qid, {})[docid] = score
    return run


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Parse qrels in TREC format (``qid iter docid grade``) or BEIR TSV.

    BEIR TSV (``query-id corpus-id score`` with a header line) is detected by its
    three columns. Grades must be integers; errors name the file and line.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    columns = 0  # fixed by the first data line: 4 (TREC) or 3 (BEIR TSV)
    for lineno, parts in _lines(path):
        if not columns:
            if len(parts) == 3 and parts[0].lower() in {"query-id", "query_id", "qid"}:
                continue  # BEIR header
            if len(parts) not in (3, 4):
                raise FormatError(
                    f"expected 4 columns (qid iter docid grade) or 3 (BEIR TSV), found {len(parts)}", path, lineno
                )
            columns = len(parts)
        if len(parts) != columns:
            kind = "TREC (qid iter docid grade)" if columns == 4 else "BEIR TSV (query-id corpus-id score)"
            raise FormatError(f"expected {columns} columns as in the rest of this {kind} file, found {len(parts)}",
                              path, lineno)
        if columns == 3:
            qid, docid, grade_s = parts
        else:
            qid, _, docid, grade_s = parts
        try:
            grade = int(grade_s)
        except ValueError:
            raise FormatError(f"relevance grade {grade_s!r} is not an integer", path, lineno) from None
        qrels.setdefault(qid, {})[docid] = grade
    return qrels


def write_run(
    run: Mapping[str, list[tuple[str, float]]], path: str | os.PathLike[str], tag: str = "rankkit"
) -> None:
    """Write ranked lists (``qid -> [(docid, score), ...]`` in rank order) as a TREC run.

    Scores are written with full float precision (``repr``) so a round trip is exact.
    """
    if not tag or any(c.isspace() for c in tag):
        raise FormatError(f"run tag {tag!r} must be a non-empty word without spaces")
    with atomic_write(path) as fh:
        for qid, ranked in run.items():
            for rank, (docid, score) in enumerate(ranked, start=1):
                fh.write(f"{qid} Q0 {docid} {rank} {score!r} {tag}\n")


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: str | os.PathLike[str]) -> None:
    """Write qrels in four-column TREC format."""
    with atomic_write(path) as fh:
        for qid, docs in qrels.items():
            for docid, grade in docs.items():
                fh.write(f"{qid} 0 {docid} {int(grade)}\n")
