"""Loose TREC files: query and corpus formats, and errors that name file and line."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from rankkit.data import load_dataset, load_trec_files
from rankkit.data.files import iter_corpus, read_queries
from rankkit.errors import DatasetError, FormatError
from rankkit.types import Document, Query

TOPICS = """\
<top>
<num> Number: 301
<title> International Organized Crime

<desc> Description:
Identify organizations that participate in international criminal activity.

<narr> Narrative:
A relevant document must as a minimum identify the organization.
</top>

<top>
<num> Number: 302
<title> Topic: Poliomyelitis
and Post-Polio
<desc> Description:
Is the disease of Poliomyelitis (polio) under control?
</top>
"""

XML_TOPICS = """<topics>
  <topic number="1">
    <query>coronavirus origin</query>
    <question>what is the origin of COVID-19</question>
  </topic>
  <topic number="2"><query>coronavirus &amp; weather</query></topic>
</topics>
"""

SGML = """\
<DOC>
<DOCNO> FT911-1 </DOCNO>
<HEADLINE>Markets rise</HEADLINE>
<TEXT>
Shares <B>rose</B> today.
</TEXT>
</DOC>
<DOC>
<DOCNO>LA-2</DOCNO>
<P>Plain body
without a TEXT tag.</P>
</DOC>
<DOC><DOCNO>X3</DOCNO><TEXT>one line</TEXT></DOC>
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_queries(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "1\tfirst query\n\n2\tsecond\tquery with tab\n")
    assert read_queries(path) == [Query("1", "first query"), Query("2", "second\tquery with tab")]


def test_jsonl_queries(tmp_path: Path) -> None:
    path = write(tmp_path / "q.jsonl", '{"_id": "a", "text": "alpha"}\n{"_id": 7, "text": "seven"}\n')
    assert read_queries(path) == [Query("a", "alpha"), Query("7", "seven")]


def test_trec_topics_use_title(tmp_path: Path) -> None:
    queries = read_queries(write(tmp_path / "topics.301-302", TOPICS))
    assert queries == [Query("301", "International Organized Crime"), Query("302", "Poliomyelitis and Post-Polio")]


def test_xml_topics_use_query(tmp_path: Path) -> None:
    queries = read_queries(write(tmp_path / "topics.xml", XML_TOPICS))
    assert queries == [Query("1", "coronavirus origin"), Query("2", "coronavirus & weather")]


def test_corpus_formats(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path / "c.jsonl",
        '{"docid": "d1", "contents": "body one"}\n{"id": "d2", "title": "T", "text": "body two"}\n',
    )
    assert list(iter_corpus(jsonl)) == [Document("d1", "body one"), Document("d2", "body two", "T")]
    tsv = write(tmp_path / "c.tsv", "d1\tbody one\nd2\tbody\ttwo\n")
    assert list(iter_corpus(tsv)) == [Document("d1", "body one"), Document("d2", "body\ttwo")]
    gz = tmp_path / "c.tsv.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write("d1\tzipped\n")
    assert list(iter_corpus(gz)) == [Document("d1", "zipped")]


def test_trec_sgml_corpus(tmp_path: Path) -> None:
    docs = list(iter_corpus(write(tmp_path / "docs.sgml", SGML)))
    assert docs == [
        Document("FT911-1", "Shares rose today.", "Markets rise"),
        Document("LA-2", "Plain body without a TEXT tag."),
        Document("X3", "one line"),
    ]


def test_load_trec_files_end_to_end(tmp_path: Path) -> None:
    queries = write(tmp_path / "topics.txt", TOPICS)
    qrels = write(tmp_path / "qrels.txt", "301 0 FT911-1 1\n302 0 LA-2 0\n")
    corpus = write(tmp_path / "docs.sgml", SGML)
    ds = load_trec_files(queries, qrels, corpus)
    assert ds.name == "topics"
    assert [q.qid for q in ds.queries] == ["301", "302"]
    assert ds.qrels.to_dict() == {"301": {"FT911-1": 1}, "302": {"LA-2": 0}}
    assert ds.docs_count() == 3
    assert ds.docs(["X3"])["X3"].text == "one line"
    via = load_dataset(queries, qrels=qrels, corpus=corpus)
    assert via.qrels == ds.qrels and via.fingerprint() == ds.fingerprint()
    rel = load_dataset(tmp_path, queries="topics.txt", qrels="qrels.txt", corpus="docs.sgml")
    assert rel.name == tmp_path.name and rel.fingerprint() == ds.fingerprint()


def test_queries_only(tmp_path: Path) -> None:
    ds = load_trec_files(write(tmp_path / "q.tsv", "1\tx\n"), name="mine")
    assert ds.name == "mine" and ds.docs_count() == 0 and len(ds.qrels) == 0


def test_missing_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=re.escape(f"queries file not found: {tmp_path / 'nope.tsv'}")):
        load_trec_files(tmp_path / "nope.tsv")
    queries = write(tmp_path / "q.tsv", "1\tx\n")
    with pytest.raises(DatasetError, match=re.escape(f"corpus file not found: {tmp_path / 'c.jsonl'}")):
        load_trec_files(queries, corpus=tmp_path / "c.jsonl")
    with pytest.raises(DatasetError, match="is a file: pass it as queries="):
        load_dataset(queries)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("q.tsv", "1\tok\n2 no tab here\n", ":2: expected 'qid<TAB>text'"),
        ("q.tsv", "1\tok\n2\t   \n", ":2: query '2' has empty text"),
        ("q.tsv", "1\tok\n1\tagain\n", ":2: query '1' appears twice (first on line 1)"),
        ("q.jsonl", '{"_id": "1", "text": "ok"}\n{"_id": "2", "text": ""}\n', ":2: query '2' has empty text"),
        ("q.jsonl", '{"_id": "1", "text": "ok"}\n{"_id": "2"}\n', ":2: missing key 'text' or 'query'"),
        ("q.jsonl", '{"_id": "1", "text": "ok"}\n{"_id": "2",\n', ":2: malformed JSON"),
        ("t.txt", "<top>\n<num> 1\n<title> ok\n</top>\n<top>\n<title> no num\n</top>\n", ":5: topic has no <num>"),
        ("t.txt", "<top>\n<num> Number: 9\n<title>\n<desc> d\n</top>\n", ":1: query '9' has empty text"),
        ("t.xml", '<topics>\n<topic number="1"><query>a</query></topic>\n<topic>\n</topic>\n', ":3: <topic>"),
    ],
)
def test_query_errors_name_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(FormatError, match=re.escape(f"{path}{message}")):
        read_queries(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.jsonl", '{"_id": "d1", "text": "a"}\n{"title": "t", "text": "b"}\n', ":2: missing key '_id' or 'docid'"),
        ("c.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "body": "b"}\n', ":2: missing key 'text' or 'contents'"),
        ("c.tsv", "d1\ta\nd2 b\n", ":2: expected 'docid<TAB>text'"),
        ("c.sgml", "<DOC>\n<DOCNO>a</DOCNO>\n</DOC>\n<DOC>\n<TEXT>x</TEXT>\n</DOC>\n", ":4: <DOC> without a <DOCNO>"),
        ("c.sgml", "<DOC>\n<DOCNO>a</DOCNO>\n<DOC>\n", ":3: <DOC> opened before the <DOC> of line 1"),
        ("c.sgml", "<DOC>\n<DOCNO>a</DOCNO>\n", ":1: <DOC> never closed"),
        ("c.sgml", "<DOC><DOCNO>a</DOCNO></DOC>\nstray\n", ":2: text outside <DOC>"),
    ],
)
def test_corpus_errors_name_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(FormatError, match=re.escape(f"{path}{message}")):
        list(iter_corpus(path))


def test_qrels_for_unknown_queries(tmp_path: Path) -> None:
    queries = write(tmp_path / "q.tsv", "1\tx\n2\ty\n")
    qrels = write(tmp_path / "qrels.txt", "1 0 d1 1\n3 0 d2 1\n3 0 d3 0\n4 0 d1 2\n")
    with pytest.raises(FormatError, match=re.escape(f"{qrels}:2: qrels judge 2 queries not in the queries: '3', '4'")):
        load_trec_files(queries, qrels)


def test_malformed_qrels_line(tmp_path: Path) -> None:
    queries = write(tmp_path / "q.tsv", "1\tx\n")
    qrels = write(tmp_path / "qrels.txt", "1 0 d1 1\n1 0 d2 1\n1 0 d3 1 extra\n")
    with pytest.raises(FormatError, match=re.escape(f"{qrels}:3: expected 4 columns")):
        load_trec_files(queries, qrels)
