"""Load a collection from loose files: queries, qrels and corpus in common TREC formats.

Queries: TSV (``qid<TAB>text``), BEIR-style JSONL (``_id``, ``text``), classic TREC
topics (``<top> <num> Number: 301 <title> ...</top>``, the title is the query) or
XML topics (``<topic number="1"><query>...</query>``). Corpus: JSONL (``_id`` /
``docid`` / ``id``, optional ``title``, ``text`` / ``contents``), TSV
(``docid<TAB>text``) or TREC SGML (``<DOC><DOCNO>..</DOCNO>...</DOC>``; the text is
the ``<TEXT>`` content, else the body without tags). Qrels use
:func:`rankkit.trec.read_qrels`. Any file may be gzipped (``.gz``). The format is
sniffed from the first non-blank line; errors name the file and line.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from rankkit import trec
from rankkit.data._io import check_qrels_queries, first_content_line, get_field, iter_jsonl, open_text, require_file
from rankkit.data.dataset import Dataset
from rankkit.errors import FormatError
from rankkit.types import Document, Qrels, Query

logger = logging.getLogger(__name__)

__all__ = ["iter_corpus", "load_trec_files", "read_queries"]

_TAG = re.compile(r"<[^>]+>")
_NUM = re.compile(r"<num>\s*(?:Number\s*:)?\s*(\S+)", re.I)
_TOPIC_XML = re.compile(r"<topic\b([^>]*)>(.*?)</topic>", re.I | re.S)
_NUMBER_ATTR = re.compile(r"number\s*=\s*[\"']?([^\"'\s>]+)", re.I)


def _query(qid: str, text: str, path: Path, line: int) -> Query:
    if not qid:
        raise FormatError("query has an empty id", path, line)
    if not text.strip():
        raise FormatError(f"query {qid!r} has empty text", path, line)
    return Query(qid, text)


def _tsv_pairs(path: Path, key: str) -> Iterator[tuple[int, str, str]]:
    """``(line, key, text)`` of each non-blank ``key<TAB>text`` line; errors name file and line."""
    with open_text(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            if "\t" not in line:
                raise FormatError(f"expected '{key}<TAB>text'", path, lineno)
            k, text = line.split("\t", 1)
            yield lineno, k.strip(), text


def _queries_tsv(path: Path) -> Iterator[tuple[Query, int]]:
    for lineno, qid, text in _tsv_pairs(path, "qid"):
        yield _query(qid, text, path, lineno), lineno


def _queries_jsonl(path: Path) -> Iterator[tuple[Query, int]]:
    for lineno, obj in iter_jsonl(path):
        qid = get_field(obj, ["_id", "qid", "query_id", "id"], path, lineno)
        yield _query(qid, get_field(obj, ["text", "query"], path, lineno), path, lineno), lineno


def _queries_topics(path: Path) -> Iterator[tuple[Query, int]]:
    """Classic ``<top>`` topics; a title may span several lines up to the next tag."""
    start = 0
    num: str | None = None
    title: list[str] | None = None
    field: str | None = None
    with open_text(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
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


def _queries_xml(path: Path) -> Iterator[tuple[Query, int]]:
    with open_text(path) as fh:
        content = fh.read()
    for m in _TOPIC_XML.finditer(content):
        lineno = content.count("\n", 0, m.start()) + 1
        num = _NUMBER_ATTR.search(m.group(1))
        if num is None:
            raise FormatError("<topic> without a number attribute", path, lineno)
        body = re.search(r"<(query|title)>(.*?)</\1>", m.group(2), re.I | re.S)
        text = " ".join(html.unescape(body.group(2)).split()) if body else ""
        yield _query(num.group(1), text, path, lineno), lineno


def read_queries(path: str | os.PathLike[str]) -> list[Query]:
    """Read queries from TSV, JSONL, classic TREC topics or XML topics (sniffed).

    Raises :class:`FormatError` with file and line for a malformed line, an empty
    query text or a qid that appears twice.
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


def _corpus_jsonl(path: Path) -> Iterator[Document]:
    for lineno, obj in iter_jsonl(path):
        docid = get_field(obj, ["_id", "docid", "id", "doc_id"], path, lineno)
        text = get_field(obj, ["text", "contents"], path, lineno)
        title = obj.get("title") or ""
        yield Document(docid, text, title if isinstance(title, str) else str(title))


def _corpus_tsv(path: Path) -> Iterator[Document]:
    for lineno, docid, text in _tsv_pairs(path, "docid"):
        if not docid:
            raise FormatError("document has an empty id", path, lineno)
        yield Document(docid, text)


def _sgml_doc(lines: list[str], path: Path, start: int) -> Document:
    body = "".join(lines)
    m = re.search(r"<DOCNO>(.*?)</DOCNO>", body, re.I | re.S)
    if m is None or not m.group(1).strip():
        raise FormatError("<DOC> without a <DOCNO>", path, start)
    docid = m.group(1).strip()
    rest = body[: m.start()] + body[m.end():]
    title_m = re.search(r"<(TITLE|HEADLINE|HEAD)>(.*?)</\1>", rest, re.I | re.S)
    title = " ".join(_TAG.sub(" ", title_m.group(2)).split()) if title_m else ""
    texts = re.findall(r"<TEXT>(.*?)</TEXT>", rest, re.I | re.S)
    if texts:
        raw_text = " ".join(texts)
    else:
        raw_text = re.sub(r"</?DOC>", " ", rest, flags=re.I)
        if title_m:
            raw_text = raw_text.replace(title_m.group(0), " ")
    return Document(docid, " ".join(html.unescape(_TAG.sub(" ", raw_text)).split()), title)


def _corpus_sgml(path: Path) -> Iterator[Document]:
    doc: list[str] | None = None
    start = 0
    with open_text(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
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
            if "</doc>" in raw.lower():
                cut = raw.lower().index("</doc>")
                doc.append(raw[:cut])
                yield _sgml_doc(doc, path, start)
                doc = None
            else:
                doc.append(raw)
    if doc is not None:
        raise FormatError("<DOC> never closed by </DOC>", path, start)


def iter_corpus(path: str | os.PathLike[str]) -> Iterator[Document]:
    """Stream documents from a JSONL, TSV or TREC SGML corpus file (format sniffed).

    Malformed input raises :class:`FormatError` with the file and line.
    """
    p = require_file(path, "corpus")
    head = first_content_line(p).lower()
    if head.startswith("{"):
        return _corpus_jsonl(p)
    if head.startswith("<doc"):
        return _corpus_sgml(p)
    return _corpus_tsv(p)


def load_trec_files(
    queries: str | os.PathLike[str],
    qrels: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Dataset:
    """Assemble a :class:`Dataset` from a queries file, optional qrels and optional corpus.

    Queries and qrels are read now (errors name file and line, including qrels that
    judge a query absent from the queries file); the corpus is checked to exist and
    streamed on demand. Without a corpus the dataset has no documents. The name
    defaults to the queries file's stem.
    """
    queries_path = require_file(queries, "queries")
    query_list = read_queries(queries_path)
    judged = Qrels()
    if qrels is not None:
        qrels_path = require_file(qrels, "qrels")
        raw = trec.read_qrels(qrels_path)
        check_qrels_queries(raw, (q.qid for q in query_list), qrels_path)
        judged = Qrels(raw)
    if corpus is not None:
        corpus_path = require_file(corpus, "corpus")
        docs, count = (lambda: iter_corpus(corpus_path)), None
    else:
        docs, count = (lambda: iter(())), 0
    label = name or queries_path.name.split(".")[0]
    logger.info("loaded %s: %d queries, %d judgements", label, len(query_list), judged.num_judgements)
    return Dataset(label, docs, query_list, judged, docs_count=count)
