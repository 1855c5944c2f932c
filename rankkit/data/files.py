"""Load a collection from loose files: queries, qrels and corpus in common TREC formats.

Queries: TSV (``qid<TAB>text``), BEIR-style JSONL (``_id``, ``text``), classic TREC
topics (``<top> <num> Number: 301 <title> ...</top>``, the title is the query) or
XML topics (``<topic number="1"><query>...</query>``). Corpus: JSONL (``_id`` /
``docid`` / ``id``, optional ``title``, ``text`` / ``contents``), TSV
(``docid<TAB>text``) or TREC SGML (``<DOC><DOCNO>..</DOCNO>...</DOC>``; the text is
the ``<TEXT>`` content, else the body without tags). Qrels use
:func:`rankkit.trec.read_qrels`. Any file may be gzipped (``.gz``). The format is
sniffed from the first non-blank line; errors name the file and line.

Reading is strict (see ``docs/file-formats.md``): UTF-8 only, LF or CRLF endings, a
leading byte order mark dropped; ids must be TREC-safe (no whitespace, control
characters or lone surrogates, :func:`rankkit.trec.check_id`); a query id or docid
that appears twice is an error, as is a file of another format (e.g. qrels given as
queries), which the message names.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from rankkit import trec
from rankkit.data._io import (
    check_id,
    check_qrels_queries,
    first_content_line,
    get_id,
    get_text,
    iter_jsonl,
    iter_lines,
    json_document,
    require_file,
    unique_docs,
)
from rankkit.data.dataset import Dataset
from rankkit.errors import FormatError
from rankkit.trec import QRELS_HEADER_NAMES, looks_like
from rankkit.types import Document, Qrels, Query

logger = logging.getLogger(__name__)

__all__ = ["iter_corpus", "load_trec_files", "read_queries"]

_TAG = re.compile(r"<[^>]+>")
_NUM = re.compile(r"<num>\s*(?:Number\s*:)?\s*(\S+)", re.I)
_NUMBER_ATTR = re.compile(r"number\s*=\s*[\"']?([^\"'\s>]+)", re.I)
_TOPIC_OPEN = re.compile(r"<topic\b([^<>]*)>", re.I)
_TOPIC_CLOSE = re.compile(r"</topic>", re.I)
_DOC_CLOSE = re.compile(r"</doc>", re.I)
_DOC_ID_KEYS = ("_id", "docid", "id", "doc_id")
_DOC_TEXT_KEYS = ("text", "contents")


def _query(qid: str, text: str, path: Path, line: int) -> Query:
    if not qid:
        raise FormatError("query has an empty id", path, line)
    check_id(qid, "query id", path, line)
    if not text.strip():
        raise FormatError(f"query {qid!r} has empty text", path, line)
    return Query(qid, text)


def _other_format(line: str) -> str | None:
    """What a ``key<TAB>text`` file's first line looks like if it is a TREC run or qrels file instead.

    Only the tab-separated fields count (a query text may well read ``0 apples 1``); a
    line without a tab is judged on its whitespace-separated columns.
    """
    fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
    if len(fields) == 3 and fields[0].lower() in QRELS_HEADER_NAMES and fields[1].lower() in {
        "corpus-id", "corpus_id", "docid", "doc_id"
    }:
        return "BEIR TSV qrels (header query-id corpus-id score)"
    kind = looks_like(fields) if all(fields) else None
    if kind is not None and kind.startswith(("a TREC run", "TREC qrels")):
        return kind
    return None


def _tsv_pairs(path: Path, key: str, what: str) -> Iterator[tuple[int, str, str]]:
    """``(line, key, text)`` of each non-blank ``key<TAB>text`` line; errors name file and line."""
    first = True
    for lineno, line in iter_lines(path):
        if not line or line.isspace():
            continue
        if first:
            first = False
            kind = _other_format(line)
            if kind is not None:
                raise FormatError(f"this looks like {kind}, not a {what} file ({key}<TAB>text)", path, lineno)
        if "\t" not in line:
            raise FormatError(f"expected '{key}<TAB>text'", path, lineno)
        k, text = line.split("\t", 1)
        yield lineno, k.strip(), text


def _queries_tsv(path: Path) -> Iterator[tuple[Query, int]]:
    for lineno, qid, text in _tsv_pairs(path, "qid", "queries"):
        yield _query(qid, text, path, lineno), lineno


def _queries_jsonl(path: Path) -> Iterator[tuple[Query, int]]:
    for lineno, obj in iter_jsonl(path):
        qid = get_id(obj, ["_id", "qid", "query_id", "id"], path, lineno, "query id")
        yield _query(qid, get_text(obj, ["text", "query"], path, lineno), path, lineno), lineno


def _queries_topics(path: Path) -> Iterator[tuple[Query, int]]:
    """Classic ``<top>`` topics; a title may span several lines up to the next tag."""
    start = 0
    num: str | None = None
    title: list[str] | None = None
    field: str | None = None
    for lineno, raw in iter_lines(path):
        line = raw.strip()
        low = line.lower()
        if low.startswith("<top>"):
            start, num, title, field = lineno, None, None, None
        elif low.startswith("</top>"):
            if num is None:
                raise FormatError("topic has no <num>", path, start)
            text = " ".join(" ".join(title or []).split())
            text = re.sub(r"^topic\s*:\s*", "", text, flags=re.I)
            yield _query(num, text, path, start), start
            field = None
        elif low.startswith("<num>"):
            m = _NUM.match(line)
            if m is None:
                raise FormatError("<num> without a topic number", path, lineno)
            num, field = m.group(1), None
        elif low.startswith("<title>"):
            title, field = [line[len("<title>"):].replace("</title>", "")], "title"
        elif line.startswith("<"):
            field = None
        elif field == "title" and title is not None:
            title.append(line)


def _element(body: str, tags: tuple[str, ...]) -> str | None:
    """The content of the first ``<tag>...</tag>`` (any of ``tags``) in ``body``, or ``None``."""
    m = re.search(f"<({'|'.join(tags)})>", body, re.I)
    if m is None:
        return None
    end = re.compile(f"</{m.group(1)}>", re.I).search(body, m.end())
    return body[m.end(): end.start()] if end is not None else None


def _queries_xml(path: Path) -> Iterator[tuple[Query, int]]:
    """XML topics, scanned in linear time (no regex backtracking over unclosed tags)."""
    content = "\n".join(line for _, line in iter_lines(path))
    pos = line_pos = 0
    lineno = 1
    while (m := _TOPIC_OPEN.search(content, pos)) is not None:
        lineno += content.count("\n", line_pos, m.start())
        line_pos = m.start()
        close = _TOPIC_CLOSE.search(content, m.end())
        if close is None:
            raise FormatError("<topic> never closed by </topic>", path, lineno)
        num = _NUMBER_ATTR.search(m.group(1))
        if num is None:
            raise FormatError("<topic> without a number attribute", path, lineno)
        body = _element(content[m.end(): close.start()], ("query", "title"))
        text = " ".join(html.unescape(body).split()) if body else ""
        yield _query(num.group(1), text, path, lineno), lineno
        pos = close.end()


def read_queries(path: str | os.PathLike[str]) -> list[Query]:
    """Read queries from TSV, JSONL, classic TREC topics or XML topics (sniffed).

    Raises :class:`FormatError` with file and line for a malformed line, an empty
    query text, an id TREC cannot carry, a qid that appears twice, or a file that is
    a run or qrels file.
    """
    p = require_file(path, "queries")
    head = first_content_line(p).lower()
    if head.startswith("{"):
        parsed = _queries_jsonl(p)
    elif re.match(r"<top\s*>", head):
        parsed = _queries_topics(p)
    elif head.startswith("<"):
        parsed = _queries_xml(p)
    else:
        parsed = _queries_tsv(p)
    seen: dict[str, int] = {}
    out: list[Query] = []
    for query, lineno in parsed:
        if query.qid in seen:
            raise FormatError(f"query {query.qid!r} appears twice (first on line {seen[query.qid]})", p, lineno)
        seen[query.qid] = lineno
        out.append(query)
    if not out:
        raise FormatError("no queries found", p)
    return out


def _corpus_jsonl(path: Path) -> Iterator[tuple[int, Document]]:
    for lineno, obj in iter_jsonl(path):
        yield lineno, json_document(obj, path, lineno, _DOC_ID_KEYS, _DOC_TEXT_KEYS)


def _corpus_tsv(path: Path) -> Iterator[tuple[int, Document]]:
    for lineno, docid, text in _tsv_pairs(path, "docid", "corpus"):
        if not docid:
            raise FormatError("document has an empty id", path, lineno)
        yield lineno, Document(check_id(docid, "document id", path, lineno), text)


def _sgml_doc(lines: list[str], path: Path, start: int) -> Document:
    body = "\n".join(lines)
    m = re.search(r"<DOCNO>([^<]*)</DOCNO>", body, re.I)
    if m is None or not m.group(1).strip():
        raise FormatError("<DOC> without a <DOCNO>", path, start)
    docid = check_id(m.group(1).strip(), "document id (<DOCNO>)", path, start)
    rest = body[: m.start()] + body[m.end():]
    title_m = re.search(r"<(TITLE|HEADLINE|HEAD)>(.*?)</\1>", rest, re.I | re.S)
    title = " ".join(_TAG.sub(" ", title_m.group(2)).split()) if title_m else ""
    texts = re.findall(r"<TEXT>(.*?)</TEXT>", rest, re.I | re.S) if "</text>" in rest.lower() else []
    if texts:
        raw_text = " ".join(texts)
    else:
        raw_text = re.sub(r"</?DOC>", " ", rest, flags=re.I)
        if title_m:
            raw_text = raw_text.replace(title_m.group(0), " ")
    return Document(docid, " ".join(html.unescape(_TAG.sub(" ", raw_text)).split()), title)


def _corpus_sgml(path: Path) -> Iterator[tuple[int, Document]]:
    doc: list[str] | None = None
    start = 0
    for lineno, raw in iter_lines(path):
        low = raw.strip().lower()
        if low.startswith("<doc>"):
            if doc is not None:
                raise FormatError(f"<DOC> opened before the <DOC> of line {start} was closed", path, lineno)
            doc, start = [], lineno
            raw = raw.split(">", 1)[1]
        if doc is None:
            if raw.strip():
                raise FormatError("text outside <DOC> ... </DOC>", path, lineno)
            continue
        close = _DOC_CLOSE.search(raw)
        if close is not None:
            doc.append(raw[: close.start()])
            yield start, _sgml_doc(doc, path, start)
            doc = None
        else:
            doc.append(raw)
    if doc is not None:
        raise FormatError("<DOC> never closed by </DOC>", path, start)


def iter_corpus(path: str | os.PathLike[str]) -> Iterator[Document]:
    """Stream documents from a JSONL, TSV or TREC SGML corpus file (format sniffed).

    Malformed input raises :class:`FormatError` with the file and line, including a
    docid that TREC cannot carry and a docid that appears twice (checked when the
    stream ends; see :func:`rankkit.data._io.unique_docs`).
    """
    p = require_file(path, "corpus")
    head = first_content_line(p).lower()
    if head.startswith("{"):
        reader: Callable[[Path], Iterator[tuple[int, Document]]] = _corpus_jsonl
    elif head.startswith("<doc"):
        reader = _corpus_sgml
    else:
        reader = _corpus_tsv
    return unique_docs(reader(p), p, lambda: reader(p))


def load_trec_files(
    queries: str | os.PathLike[str],
    qrels: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Dataset:
    """Assemble a :class:`Dataset` from a queries file, optional qrels and optional corpus.

    Queries and qrels are read now (errors name file and line, including qrels that
    judge a query absent from the queries file, and an empty qrels file); the corpus is
    checked to exist and be non-empty, and streamed on demand. Without a corpus the dataset has no documents. The name
    defaults to the queries file's stem.
    """
    queries_path = require_file(queries, "queries")
    query_list = read_queries(queries_path)
    judged = Qrels()
    if qrels is not None:
        qrels_path = require_file(qrels, "qrels")
        raw = trec.read_qrels(qrels_path)
        if not raw:
            raise FormatError("no judgements found (the qrels file is empty)", qrels_path)
        check_qrels_queries(raw, (q.qid for q in query_list), qrels_path)
        judged = Qrels(raw)
    if corpus is not None:
        corpus_path = require_file(corpus, "corpus")
        if not first_content_line(corpus_path):
            raise FormatError("no documents found (the corpus file is empty)", corpus_path)
        docs, count = (lambda: iter_corpus(corpus_path)), None
    else:
        docs, count = (lambda: iter(())), 0
    label = name or queries_path.name.split(".")[0]
    logger.info("loaded %s: %d queries, %d judgements", label, len(query_list), judged.num_judgements)
    return Dataset(label, docs, query_list, judged, docs_count=count)
