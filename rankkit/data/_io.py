"""Small readers shared by the dataset loaders: text lines, JSONL, fields, ids, qrels checks.

Every reader reports problems as :class:`~rankkit.errors.FormatError` naming the file
and 1-based line, or :class:`~rankkit.errors.DatasetError` for a missing file, so a
user can fix the input without reading a traceback. Text comes from
:func:`rankkit.trec.iter_lines` (strict UTF-8, LF/CRLF, BOM dropped, ``*.gz``), so
no reader lets a ``UnicodeDecodeError``, ``RecursionError`` or the like escape.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rankkit.errors import DatasetError, FormatError
from rankkit.trec import check_id, iter_lines, show
from rankkit.types import Document, Qrels

__all__ = [
    "check_id",
    "check_qrels_queries",
    "first_content_line",
    "get_id",
    "get_text",
    "iter_jsonl",
    "iter_lines",
    "json_document",
    "require_file",
    "unique_docs",
]



def require_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a :class:`Path`, raising :class:`DatasetError` naming it when absent or a folder."""
    p = Path(path).expanduser()
    if not p.is_file():
        if p.is_dir():
            raise DatasetError(f"{what} file expected, but {p} is a folder")
        raise DatasetError(f"{what} file not found: {p}")
    return p


def first_content_line(path: Path) -> str:
    """The first non-blank line of a file, stripped (``""`` for an empty file); used to sniff formats."""
    for _, line in iter_lines(path):
        if line and not line.isspace():
            return line.strip()
    return ""


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file (``*.gz`` allowed).

    A line that is not valid JSON (including nesting too deep to parse and integer
    literals beyond Python's digit limit), or is JSON but not an object, raises
    :class:`FormatError` with the file and line. Values are checked by :func:`get_id`
    and :func:`get_text` (types, lone surrogates) as they are read.
    """
    for lineno, line in iter_lines(path):
        if not line or line.isspace():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"malformed JSON ({exc.msg} at column {exc.colno})", path, lineno) from None
        except RecursionError:
            raise FormatError("malformed JSON (nested too deeply to parse)", path, lineno) from None
        except ValueError as exc:  # e.g. an integer literal over sys.get_int_max_str_digits()
            raise FormatError(f"malformed JSON ({str(exc).split(':')[0][:120]})", path, lineno) from None
        if not isinstance(obj, dict):
            raise FormatError(f"expected a JSON object, found {_json_type(obj)}", path, lineno)
        yield lineno, obj


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _missing(keys: Sequence[str], path: Path, line: int) -> FormatError:
    return FormatError(f"missing key {' or '.join(repr(k) for k in keys)}", path, line)


def get_id(obj: Mapping[str, Any], keys: Sequence[str], path: Path, line: int, what: str = "id") -> str:
    """The id under the first of ``keys`` present (and not null) in ``obj``, as a string.

    The value must be a JSON string or integer and pass :func:`~rankkit.trec.check_id`
    (no whitespace, control characters or lone surrogates, so a TREC run can carry it).
    Raises :class:`FormatError` naming the file, line and key(s) otherwise.
    """
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            return check_id(value, f"{what} (key {key!r})", path, line)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise FormatError(f"{what} (key {key!r}) must be a string or an integer, found {_json_type(value)}", path, line)
    raise _missing(keys, path, line)


def get_text(obj: Mapping[str, Any], keys: Sequence[str], path: Path, line: int, *, required: bool = True) -> str:
    """The string under the first of ``keys`` present (and not null) in ``obj``.

    The value must be a JSON string without lone surrogates (a ``\\ud800`` escape
    without its pair decodes to one, which is not valid Unicode and cannot be encoded
    later). A missing key is an error when ``required``, else ``""``. Errors name the
    file, line and key(s).
    """
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise FormatError(f"key {key!r} must be a string, found {_json_type(value)}", path, line)
        if not value.isascii():  # O(1) for ASCII strings; else a strict encode finds lone surrogates
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                char = ord(value[exc.start])
                raise FormatError(
                    f"key {key!r} contains a lone surrogate U+{char:04X}, which is not valid Unicode "
                    f"(a JSON \\u{char:04x} escape without its pair)",
                    path,
                    line,
                ) from None
        return value
    if required:
        raise _missing(keys, path, line)
    return ""


def _encodable(text: str) -> bool:
    """Whether ``text`` has no lone surrogate (so it can be written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_document(
    obj: Mapping[str, Any],
    path: Path,
    line: int,
    id_keys: Sequence[str] = ("_id",),
    text_keys: Sequence[str] = ("text",),
) -> Document:
    """A :class:`Document` from a JSONL corpus line: id (:func:`get_id`), text and optional ``title``.

    The common case (under the first keys, a printable-ASCII string id and string text
    and title without lone surrogates) skips the per-field helpers; every other line
    goes through them, so both paths accept and refuse the same input.
    """
    docid, text, title = obj.get(id_keys[0]), obj.get(text_keys[0]), obj.get("title")
    if (
        type(docid) is str
        and type(text) is str
        and docid.isascii()
        and docid.isprintable()
        and " " not in docid
        and docid
        and (text.isascii() or _encodable(text))
        and (title is None or (type(title) is str and (title.isascii() or _encodable(title))))
    ):
        return Document(docid, text, title or "")
    return Document(
        get_id(obj, id_keys, path, line, "document id"),
        get_text(obj, text_keys, path, line),
        get_text(obj, ("title",), path, line, required=False),
    )


def unique_docs(
    docs: Iterable[tuple[int, Document]], path: Path, reread: Callable[[], Iterable[tuple[int, Document]]]
) -> Iterator[Document]:
    """Stream ``docs`` (``(line, document)`` pairs), raising :class:`FormatError` if a docid repeats.

    Memory stays small on large corpora: only 8-byte hashes of the ids are kept, and
    they are compared when the stream ends; the error (with both line numbers) is then
    found by ``reread``-ing the file. A consumer that stops early sees no check.
    """
    hashes = array("q")
    add = hashes.append
    for _, doc in docs:
        add(hash(doc.docid))
        yield doc
    repeated = _repeated(hashes)
    if not repeated:
        return
    seen: dict[str, int] = {}
    for lineno, doc in reread():
        if hash(doc.docid) in repeated:
            if doc.docid in seen:
                raise FormatError(
                    f"document id {show(doc.docid)} appears twice (first on line {seen[doc.docid]})", path, lineno
                )
            seen[doc.docid] = lineno


def _repeated(hashes: array) -> set[int]:
    """The values that occur more than once in ``hashes``."""
    if len(hashes) < 2:
        return set()
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with every install of rankkit's stack
        ordered = sorted(hashes)
        return {a for a, b in zip(ordered, ordered[1:]) if a == b}
    values = np.frombuffer(hashes, dtype=np.int64).copy()
    values.sort()
    return set(values[1:][values[1:] == values[:-1]].tolist())


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
    for lineno, line in iter_lines(path):
        parts = line.split()
        if parts and parts[0] in qids:
            return lineno
    return None
