"""Reading and writing TREC run and qrels files, strict text-line reading, and atomic file writes.

TREC is rankkit's on-disk interchange format. Parsers are strict: a malformed line
raises :class:`~rankkit.errors.FormatError` naming the file and line, and a docid that
appears twice for the same query in a run, or a judgement given twice in qrels, is an
error (trec_eval would silently count it twice, or keep one). :func:`iter_lines` is the
one text reader behind every file format rankkit parses: UTF-8 only (invalid bytes are
reported with their line and byte offset), LF or CRLF line endings, a leading byte
order mark dropped, ``*.gz`` decompressed. Ids (:func:`check_id`), scores
(:func:`parse_score`) and grades (:func:`parse_grade`) are checked the same way in
every format. Writers go through :func:`atomic_write`, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
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


#: relevance grades must fit a signed 32-bit integer (what trec_eval and ranx store)
GRADE_MIN, GRADE_MAX = -(2**31), 2**31 - 1
#: the first token of a BEIR TSV qrels header line (``query-id corpus-id score``)
QRELS_HEADER_NAMES = frozenset({"query-id", "query_id", "qid"})

_BOM = "\ufeff"
_BAD_ID_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")
_RUN_FORMAT = "qid Q0 docid rank score tag"


def show(value: str, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (with the full length) for error messages."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file for reading bytes, transparently decompressing ``*.gz``.

    A missing path, a folder or an unreadable file raises :class:`FormatError` naming it.
    """
    path = Path(path)
    opener: Callable[..., IO[bytes]] = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        return opener(path, "rb")
    except FileNotFoundError:
        raise FormatError("file not found", path) from None
    except IsADirectoryError:
        raise FormatError("is a folder, not a file", path) from None
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror or exc})", path) from None


def _decode_error(path: Path, lineno: int, offset: int, data: bytes, exc: UnicodeDecodeError) -> FormatError:
    """The error for invalid UTF-8 at ``data[exc.start]``; ``data`` starts on line ``lineno + 1``, at ``offset``."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    where = offset + exc.start
    gz = " of the decompressed data" if path.name.lower().endswith(".gz") else ""
    hint = ""
    if offset == 0 and data.startswith(b"\x1f\x8b") and not gz:
        hint = "; the file looks gzip-compressed: give it a .gz name"
    elif offset == 0 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        hint = "; the file looks UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8"
    return FormatError(
        f"invalid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {where}{gz} "
        f"(byte {exc.start - line_start + 1} of the line){hint}",
        path,
        lineno + data.count(b"\n", 0, exc.start) + 1,
    )


def _blocks(fh: IO[bytes], size: int = 1 << 16) -> Iterator[bytes]:
    """The bytes of ``fh`` in blocks of whole lines (each ends with LF, except perhaps the last)."""
    pieces: list[bytes] = []
    while block := fh.read(size):
        cut = block.rfind(b"\n") + 1
        if not cut:
            pieces.append(block)
            continue
        if pieces:
            pieces.append(block[:cut])
            yield b"".join(pieces)
        else:
            yield block[:cut] if cut < len(block) else block
        pieces = [block[cut:]] if cut < len(block) else []
    if pieces:
        yield b"".join(pieces)


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of every line of a UTF-8 text file (``*.gz`` decompressed).

    Lines end with LF or CRLF; the ending is removed, and so is a byte order mark at the
    start of the file. Invalid UTF-8 (reported with its byte offset), a bare CR inside a
    line, and missing, unreadable or corrupt (gzip) files raise :class:`FormatError`
    naming the file and the 1-based line. The file is decoded in blocks of about 64 KiB,
    so memory stays small and lines cost little more than :meth:`str.split`.
    """
    path = Path(path)
    lineno = offset = 0
    with open_binary(path) as fh:
        try:
            for data in _blocks(fh):
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _decode_error(path, lineno, offset, data, exc) from None
                if not offset and text[:1] == _BOM:
                    text = text[1:]
                offset += len(data)
                lines = text.split("\n")
                if not lines[-1]:
                    lines.pop()  # the block ended with LF
                if "\r" in text:
                    for i, line in enumerate(lines):
                        if line[-1:] == "\r":
                            lines[i] = line = line[:-1]
                        if "\r" in line:
                            raise FormatError(
                                "carriage return (CR) inside a line: lines must end with LF or CRLF "
                                "(not CR alone, as in old Mac files)",
                                path,
                                lineno + i + 1,
                            )
                yield from enumerate(lines, lineno + 1)
                lineno += len(lines)
        except (OSError, EOFError, zlib.error) as exc:
            what = "corrupt or truncated gzip data" if path.name.lower().endswith(".gz") else "read error"
            raise FormatError(f"{what} after line {lineno} ({exc or type(exc).__name__})", path) from None


def check_id(value: str, what: str, path: object = None, line: int | None = None) -> str:
    """Return ``value`` if a TREC file can carry it as an id, else raise :class:`FormatError`.

    An id must be non-empty, without whitespace, control characters (C0, C1, DEL), byte
    order marks or lone surrogates. Length is not limited.
    """
    if value.isascii():
        if value.isprintable() and " " not in value and value:
            return value
    elif _BAD_ID_CHAR.search(value) is None:
        return value
    if not value:
        raise FormatError(f"{what} is empty", path, line)
    bad = _BAD_ID_CHAR.search(value)
    char = bad.group() if bad else value[0]
    if "\ud800" <= char <= "\udfff":
        why = f"a lone surrogate U+{ord(char):04X}, which is not valid Unicode (e.g. a JSON \\u{ord(char):04x} escape)"
    elif char == _BOM:
        why = "a byte order mark U+FEFF"
    elif char.isspace():
        why = f"whitespace U+{ord(char):04X}"
    else:
        why = f"the control character U+{ord(char):04X}"
    raise FormatError(f"{what} {show(value)} contains {why}: TREC files cannot carry it", path, line)


def parse_score(text: str, path: object = None, line: int | None = None) -> float:
    """A run score: a finite float written in plain ASCII decimal or exponent form.

    ``nan``/``inf``, values that overflow a float, a leading ``+``, underscores and
    non-ASCII digits (all accepted by :func:`float`) raise :class:`FormatError`.
    """
    if text.isascii() and "_" not in text and text[:1] != "+":
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return value
            raise FormatError(f"score {show(text)} is not finite", path, line)
    raise FormatError(f"score {show(text)} is not a number (plain ASCII decimal, e.g. 12.5 or -3e-2)", path, line)


def parse_grade(text: str, path: object = None, line: int | None = None) -> int:
    """A relevance grade: ASCII digits with an optional leading ``-``, within a signed 32-bit integer.

    ``+1``, ``1_000``, non-ASCII digits and out-of-range values raise :class:`FormatError`.
    """
    digits = text[1:] if text[:1] == "-" else text
    if digits.isascii() and digits.isdigit():
        if len(digits) <= 10:
            value = int(text)
            if GRADE_MIN <= value <= GRADE_MAX:
                return value
        raise FormatError(
            f"relevance grade {show(text)} is out of range: grades must fit a signed 32-bit integer "
            f"({GRADE_MIN}..{GRADE_MAX})",
            path,
            line,
        )
    raise FormatError(f"relevance grade {show(text)} is not an integer (ASCII digits, optional '-')", path, line)


def _is_int(text: str) -> bool:
    digits = text[1:] if text[:1] == "-" else text
    return digits.isascii() and digits.isdigit()


def _is_float(text: str) -> bool:
    try:
        parse_score(text)
    except FormatError:
        return False
    return True


def looks_like(parts: list[str]) -> str | None:
    """What a line split on whitespace looks like, if it is a line of a known format; for error hints."""
    n = len(parts)
    if not n:
        return None
    if parts[0].startswith(("{", "[")):
        return "JSONL"
    if parts[0].startswith("<"):
        return "XML/SGML"
    if n == 6 and _is_int(parts[3]) and _is_float(parts[4]):
        return f"a TREC run ({_RUN_FORMAT})"
    if n == 4 and _is_int(parts[3]):
        return "TREC qrels (qid iter docid grade)"
    if n == 3 and parts[0].lower() in QRELS_HEADER_NAMES:
        return "BEIR TSV qrels (query-id corpus-id score)"
    if n == 3 and parts[1] in ("0", "Q0", "q0"):
        return "TREC qrels missing the grade column (qid iter docid grade)"
    return None


def _raise_if_markup(parts: list[str], what: str, path: Path, line: int) -> None:
    """Raise a "looks like JSONL/XML" :class:`FormatError` for a line that happens to have the right column count."""
    kind = looks_like(parts)
    if kind in ("JSONL", "XML/SGML"):
        raise FormatError(f"this line looks like {kind}, not {what}", path, line)


def _first_line_of(path: Path, qid: str, docid: str, col: int) -> int | None:
    """The first line with ``qid`` in column 0 and ``docid`` in column ``col`` (error paths only)."""
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) > col and parts[0] == qid and parts[col] == docid:
            return lineno
    return None


def read_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Parse a six-column TREC run file (``qid Q0 docid rank score tag``; ``*.gz`` allowed).

    Raises :class:`FormatError` naming file and line for a wrong column count (saying
    which format the line looks like), an id TREC cannot carry (:func:`check_id`), a
    rank that is not a non-negative integer, a score that is not a finite plain number
    (:func:`parse_score`), invalid UTF-8, or a docid repeated within one query.
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 6:
            if not parts:
                continue
            kind = looks_like(parts)
            hint = f": this line looks like {kind}, not a run" if kind else ""
            raise FormatError(f"expected 6 columns ({_RUN_FORMAT}), found {len(parts)}{hint}", path, lineno)
        qid, _, docid, rank_s, score_s, _ = parts
        if not (qid.isascii() and qid.isprintable()):
            check_id(qid, "query id", path, lineno)
        if not (docid.isascii() and docid.isprintable()):
            check_id(docid, "docid", path, lineno)
        try:
            if not (rank_s.isascii() and rank_s.isdigit()):
                raise FormatError(f"rank {show(rank_s)} is not a non-negative integer", path, lineno)
            score = parse_score(score_s, path, lineno)
        except FormatError:
            _raise_if_markup(parts, "a run", path, lineno)
            raise
        docs = run.get(qid)
        if docs is None:
            docs = run[qid] = {}
        elif docid in docs:
            first = _first_line_of(path, qid, docid, 2)
            raise FormatError(
                f"docid {show(docid)} appears twice for query {show(qid)} (first on line {first})", path, lineno
            )
        docs[docid] = score
    return run


def _qrels_columns(parts: list[str], path: Path, lineno: int) -> tuple[int, bool]:
    """``(columns, is_header)`` fixed by the first non-blank line of a qrels file."""
    n = len(parts)
    if n == 4:
        return 4, False
    if n == 3:
        if parts[0].lower() in QRELS_HEADER_NAMES and not _is_int(parts[2]):
            return 3, True
        if parts[1] in ("0", "Q0", "q0"):
            raise FormatError(
                f"3 columns with {parts[1]!r} in the second: this looks like TREC qrels missing the grade column "
                "(qid iter docid grade); BEIR TSV qrels (query-id corpus-id score) start with a header line",
                path,
                lineno,
            )
        return 3, False
    kind = looks_like(parts)
    hint = f": this line looks like {kind}, not qrels" if kind else ""
    raise FormatError(
        f"expected 4 columns (qid iter docid grade) or 3 (BEIR TSV: query-id corpus-id score), found {n}{hint}",
        path,
        lineno,
    )


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Parse qrels in TREC format (``qid iter docid grade``) or BEIR TSV (``*.gz`` allowed).

    BEIR TSV (``query-id corpus-id score``, normally after a header line) is detected by
    its three columns; a three-column file whose second column is ``0``/``Q0`` and has no
    header is refused as TREC qrels missing the grade. Ids must pass :func:`check_id`,
    grades :func:`parse_grade`, and a (qid, docid) pair judged twice is an error. Errors
    name the file and line.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    columns = -1  # fixed by the first data line: 4 (TREC) or 3 (BEIR TSV)
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != columns:
            if not parts:
                continue
            if columns > 0:
                kind = "TREC (qid iter docid grade)" if columns == 4 else "BEIR TSV (query-id corpus-id score)"
                looks = looks_like(parts)
                hint = f"; this line looks like {looks}" if looks and len(parts) not in (3, 4) else ""
                raise FormatError(
                    f"expected {columns} columns as in the rest of this {kind} file, found {len(parts)}{hint}",
                    path,
                    lineno,
                )
            columns, header = _qrels_columns(parts, path, lineno)
            if header:
                continue
        if columns == 4:
            qid, _, docid, grade_s = parts
        else:
            qid, docid, grade_s = parts
        if grade_s.isdigit() and grade_s.isascii() and len(grade_s) < 10:  # common case, within int32
            grade = int(grade_s)
        else:
            _raise_if_markup(parts, "qrels", path, lineno)
            grade = parse_grade(grade_s, path, lineno)
        if not (qid.isascii() and qid.isprintable()):
            check_id(qid, "query id", path, lineno)
        if not (docid.isascii() and docid.isprintable()):
            check_id(docid, "docid", path, lineno)
        docs = qrels.get(qid)
        if docs is None:
            docs = qrels[qid] = {}
        elif docid in docs:
            first = _first_line_of(path, qid, docid, 2 if columns == 4 else 1)
            raise FormatError(
                f"query {show(qid)} judges docid {show(docid)} twice (first on line {first})", path, lineno
            )
        docs[docid] = grade
    return qrels


def write_run(
    run: Mapping[str, list[tuple[str, float]]], path: str | os.PathLike[str], tag: str = "rankkit"
) -> None:
    """Write ranked lists (``qid -> [(docid, score), ...]`` in rank order) as a TREC run.

    Scores are written with full float precision (``repr``) so a round trip is exact.
    Ids that :func:`read_run` would refuse (:func:`check_id`) and non-finite scores raise
    :class:`FormatError` before anything is written under ``path``.
    """
    if not tag or any(c.isspace() for c in tag):
        raise FormatError(f"run tag {tag!r} must be a non-empty word without spaces")
    check_id(tag, "run tag", path)
    with atomic_write(path) as fh:
        for qid, ranked in run.items():
            check_id(qid, "query id", path)
            for rank, (docid, score) in enumerate(ranked, start=1):
                if not (docid.isascii() and docid.isprintable() and " " not in docid):
                    check_id(docid, f"docid (query {show(qid)})", path)
                if not math.isfinite(score):
                    raise FormatError(f"score {score!r} of docid {show(docid)} for query {show(qid)} is not finite",
                                      path)
                fh.write(f"{qid} Q0 {docid} {rank} {score!r} {tag}\n")


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: str | os.PathLike[str]) -> None:
    """Write qrels in four-column TREC format; ids and grades must be readable by :func:`read_qrels`."""
    with atomic_write(path) as fh:
        for qid, docs in qrels.items():
            check_id(qid, "query id", path)
            for docid, grade in docs.items():
                check_id(docid, f"docid (query {show(qid)})", path)
                if not GRADE_MIN <= int(grade) <= GRADE_MAX:
                    raise FormatError(f"grade {int(grade)} of docid {show(docid)} for query {show(qid)} does not "
                                      f"fit a signed 32-bit integer", path)
                fh.write(f"{qid} 0 {docid} {int(grade)}\n")
