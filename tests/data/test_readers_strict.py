"""Strict file readers: every malformed byte sequence is a FormatError/DatasetError naming file and line.

Covers encodings (invalid UTF-8 with its byte offset, BOM, CRLF, gzip), formats that
look like other formats, duplicate ids and judgements, strict numbers, ids a TREC file
cannot carry, deep JSON, keyword-only ``load_dataset``, folders given as files, and a
seeded mutation fuzz that allows no foreign exception from any reader.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rankkit import trec
from rankkit.data import load_beir_folder, load_dataset, load_trec_files
from rankkit.data.beir import iter_beir_corpus
from rankkit.data.dataset import Dataset
from rankkit.data.files import iter_corpus, read_queries
from rankkit.errors import DatasetError, FormatError, RankkitError
from rankkit.types import Document, Qrels, Query, Run


def write(path: Path, data: bytes | str) -> Path:
    """Write bytes verbatim, or text as UTF-8 (``.gz`` names are gzip-compressed)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def corpus(path: Path) -> list[Document]:
    return list(iter_corpus(path))


#: (file name, valid content, reader) for every text format rankkit reads
READERS: list[tuple[str, str, Callable[[Path], Any]]] = [
    ("run.trec", "q1 Q0 d1 1 1.5 t\nq1 Q0 d2 2 0.5 t\n", trec.read_run),
    ("qrels.txt", "q1 0 d1 1\nq1 0 d2 0\n", trec.read_qrels),
    ("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n", trec.read_qrels),
    ("q.tsv", "1\tfirst query\n2\tsecond query\n", read_queries),
    ("q.jsonl", '{"_id": "1", "text": "first"}\n{"_id": "2", "text": "second"}\n', read_queries),
    ("t.txt", "<top>\n<num> Number: 1\n<title> first\n</top>\n<top>\n<num> 2\n<title> second\n</top>\n", read_queries),
    ("t.xml", '<topics>\n<topic number="1"><query>first</query></topic>\n<topic number="2">\n'
              "<query>second</query></topic>\n</topics>\n", read_queries),
    ("c.jsonl", '{"_id": "d1", "text": "one"}\n{"_id": "d2", "title": "T", "text": "two"}\n', corpus),
    ("c.tsv", "d1\tone\nd2\ttwo\n", corpus),
    ("c.sgml", "<DOC>\n<DOCNO>d1</DOCNO>\n<TEXT>one</TEXT>\n</DOC>\n"
               "<DOC>\n<DOCNO>d2</DOCNO>\n<TEXT>two</TEXT>\n</DOC>\n", corpus),
    ("corpus.jsonl", '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n',
     lambda p: list(iter_beir_corpus(p))),
]
IDS = [r[0] for r in READERS]


# --- encodings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize(("name", "content", "read"), READERS, ids=IDS)
def test_invalid_utf8_names_file_line_and_byte_offset(
    tmp_path: Path, name: str, content: str, read: Callable[[Path], Any], gz: bool
) -> None:
    first, second = content.encode().split(b"\n", 1)
    bad = first + b"\n" + second.replace(b"2", b"\xff", 1)  # the first '2' after line 1 becomes an invalid byte
    offset = bad.index(b"\xff")
    line = bad.count(b"\n", 0, offset) + 1
    path = write(tmp_path / (name + (".gz" if gz else "")), bad)
    message = f"{path}:{line}: invalid UTF-8: byte 0xff at byte offset {offset}"
    with pytest.raises(FormatError, match=re.escape(message)):
        read(path)


@pytest.mark.parametrize(("name", "content", "read"), READERS, ids=IDS)
def test_bom_crlf_and_gzip_are_accepted(tmp_path: Path, name: str, content: str, read: Callable[[Path], Any]) -> None:
    expected = read(write(tmp_path / name, content))
    crlf = "\ufeff" + content.replace("\n", "\r\n")
    assert read(write(tmp_path / f"bom-{name}", crlf)) == expected
    assert read(write(tmp_path / f"{name}.gz", crlf)) == expected


def test_bom_is_not_part_of_the_first_id(tmp_path: Path) -> None:
    assert set(trec.read_run(write(tmp_path / "r.trec", "\ufeffq1 Q0 d1 1 1 t\n"))) == {"q1"}
    assert set(trec.read_qrels(write(tmp_path / "q.txt", "\ufeffq1 0 d1 1\n"))) == {"q1"}
    beir = write(tmp_path / "q.tsv", "\ufeffquery-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert trec.read_qrels(beir) == {"q1": {"d1": 1}}


def test_encoding_hints_and_bare_cr(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="looks gzip-compressed: give it a .gz name"):
        read_queries(write(tmp_path / "q.tsv", gzip.compress(b"1\tx\n")))
    with pytest.raises(FormatError, match="looks UTF-16"):
        read_queries(write(tmp_path / "u.tsv", "1\tx\n".encode("utf-16")))
    with pytest.raises(FormatError, match=re.escape(f"{tmp_path / 'r.trec'}:1: carriage return (CR) inside a line")):
        trec.read_run(write(tmp_path / "r.trec", "q1 Q0 d1 1 1 t\rq1 Q0 d2 2 0 t\r"))


def test_corrupt_or_truncated_gzip(tmp_path: Path) -> None:
    (tmp_path / "qrels.txt.gz").write_bytes(gzip.compress(b"q1 0 d1 1\n" * 200)[:-20])
    with pytest.raises(FormatError, match=r"qrels\.txt\.gz: corrupt or truncated gzip data"):
        trec.read_qrels(tmp_path / "qrels.txt.gz")
    (tmp_path / "plain.tsv.gz").write_bytes(b"1\tnot gzip\n")
    with pytest.raises(FormatError, match="corrupt or truncated gzip data"):
        read_queries(tmp_path / "plain.tsv.gz")


def test_empty_and_blank_files(tmp_path: Path) -> None:
    assert trec.read_run(write(tmp_path / "r.trec", "")) == {}
    assert trec.read_qrels(write(tmp_path / "q.txt", "\n \n\t\nq1 0 d1 1\n\n")) == {"q1": {"d1": 1}}
    with pytest.raises(FormatError, match="no queries found"):
        read_queries(write(tmp_path / "q.tsv", "\n\n"))
    queries = write(tmp_path / "topics.tsv", "1\tx\n")
    with pytest.raises(FormatError, match=re.escape(f"{tmp_path / 'e.txt'}: no judgements found")):
        load_trec_files(queries, qrels=write(tmp_path / "e.txt", ""))
    with pytest.raises(FormatError, match=re.escape(f"{tmp_path / 'e.jsonl'}: no documents found")):
        load_trec_files(queries, corpus=write(tmp_path / "e.jsonl", " \n"))


def test_tabs_and_spaces_both_separate_trec_columns(tmp_path: Path) -> None:
    assert trec.read_run(write(tmp_path / "r.trec", "q1\tQ0 d1\t1  0.5\tt\n")) == {"q1": {"d1": 0.5}}


# --- formats that look like other formats ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "content", "message"),
    [
        (trec.read_qrels, "1 0 31715818\n1 0 42\n", ":1: 3 columns with '0' in the second: this looks like TREC qrels "
                                                   "missing the grade column"),
        (trec.read_qrels, "q1 Q0 d1\n", "looks like TREC qrels missing the grade column"),
        (trec.read_qrels, "q1 Q0 d1 1 0.5 bm25\n", ":1: expected 4 columns (qid iter docid grade) or 3 (BEIR "
                                                   "TSV: query-id corpus-id score), found 6: this line looks like a "
                                                   "TREC run"),
        (trec.read_qrels, '{"_id": "q1", "text": "x"}\n', "looks like JSONL, not qrels"),
        (trec.read_qrels, "q1 0 d1 1\nq1 0 d2\n", ":2: expected 4 columns as in the rest of this TREC"),
        (trec.read_run, "q1 0 d1 1\n", ":1: expected 6 columns (qid Q0 docid rank score tag), found 4: this line looks "
                                       "like TREC qrels"),
        (trec.read_run, "query-id\tcorpus-id\tscore\n", "looks like BEIR TSV qrels"),
        (trec.read_run, "q1 Q0 d1 first 0.5 t\n", ":1: rank 'first' is not a non-negative integer"),
        (read_queries, "query-id\tcorpus-id\tscore\nq1\td1\t1\n", ":1: this looks like BEIR TSV qrels"),
        (read_queries, "1\t0\tdoc1\t1\n", ":1: this looks like TREC qrels (qid iter docid grade), not a queries"),
        (read_queries, "1\tQ0\tdoc1\t1\t2.5\tbm25\n", ":1: this looks like a TREC run"),
        (corpus, "q1\t0\tdoc1\t1\n", ":1: this looks like TREC qrels (qid iter docid grade), not a corpus"),
    ],
)
def test_wrong_format_says_what_it_looks_like(tmp_path: Path, read: Callable[[Path], Any], content: str,
                                               message: str) -> None:
    path = write(tmp_path / "file.txt", content)
    with pytest.raises(FormatError, match=re.escape(message)):
        read(path)


def test_headerless_three_column_qrels_still_read(tmp_path: Path) -> None:
    assert trec.read_qrels(write(tmp_path / "q.tsv", "q1\td1\t1\nq1\td2\t0\n")) == {"q1": {"d1": 1, "d2": 0}}


# --- duplicates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "docid", "line"),
    [
        ("c.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}\n{"_id": "a", "text": "z"}\n', "a", 3),
        ("c.jsonl", '{"_id": "1", "text": "x"}\n{"docid": 1, "text": "y"}\n', "1", 2),
        ("c.tsv", "a\tx\nb\ty\na\tz\n", "a", 3),
        ("c.sgml", "<DOC><DOCNO>a</DOCNO></DOC>\n<DOC>\n<DOCNO> a </DOCNO>\n</DOC>\n", "a", 2),
    ],
)
def test_duplicate_docids_in_loose_corpus(tmp_path: Path, name: str, content: str, docid: str, line: int) -> None:
    path = write(tmp_path / name, content)
    message = f"{path}:{line}: document id {docid!r} appears twice (first on line 1)"
    with pytest.raises(FormatError, match=re.escape(message)):
        corpus(path)


def test_duplicate_docid_in_beir_corpus(tmp_path: Path, beir: SimpleNamespace) -> None:
    folder = beir.make(tmp_path / "tiny", corpus=[*beir.CORPUS, {"_id": "d2", "text": "again"}])
    ds = load_beir_folder(folder)
    with pytest.raises(FormatError, match=re.escape(f"{folder / 'corpus.jsonl'}:4: document id 'd2' appears twice "
                                                    "(first on line 2)")):
        ds.docs_count()


def test_duplicate_judgements(tmp_path: Path) -> None:
    path = write(tmp_path / "q.txt", "q1 0 d1 1\nq1 0 d2 1\nq1 0 d1 0\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}:3: query 'q1' judges docid 'd1' twice (first on line 1)")):
        Qrels.from_trec(path)
    path = write(tmp_path / "q.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td1\t1\nq1\td1\t1\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}:4: query 'q1' judges docid 'd1' twice (first on line 2)")):
        trec.read_qrels(path)


def test_duplicate_query_ids_in_jsonl_and_topics(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=re.escape(":2: query '1' appears twice (first on line 1)")):
        read_queries(write(tmp_path / "q.jsonl", '{"_id": "1", "text": "a"}\n{"_id": 1, "text": "b"}\n'))
    with pytest.raises(FormatError, match=re.escape(":3: query '7' appears twice (first on line 2)")):
        read_queries(write(tmp_path / "t.xml", '<topics>\n<topic number="7"><query>a</query></topic>\n'
                                               '<topic number="7"><query>b</query></topic>\n</topics>\n'))


def test_dataset_lookup_refuses_repeated_docids() -> None:
    ds = Dataset("mem", lambda: iter([Document("a", "x"), Document("a", "y")]), [Query("1", "q")])
    with pytest.raises(DatasetError, match="document id 'a' twice"):
        ds.docs(["a"])


# --- numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grade", ["1_000", "+1", "\u0661", "\u00b2", "1.0", "1e3", "0x1", "--1", "-", "high"])
def test_grades_are_plain_ascii_integers(tmp_path: Path, grade: str) -> None:
    path = write(tmp_path / "q.txt", f"q1 0 d1 1\nq1 0 d2 {grade}\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}:2: relevance grade {grade!r} is not an integer")):
        trec.read_qrels(path)


@pytest.mark.parametrize("grade", [str(10**30), str(2**31), str(-(2**31) - 1), "9" * 5000])
def test_huge_grades_are_out_of_range(tmp_path: Path, grade: str) -> None:
    path = write(tmp_path / "q.txt", f"q1 0 d1 {grade}\n")
    with pytest.raises(FormatError, match=r":1: relevance grade .* is out of range: grades must fit a signed 32-bit"):
        trec.read_qrels(path)


def test_grade_range_limits_and_negatives_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "q.txt", f"q1 0 d1 {2**31 - 1}\nq1 0 d2 {-(2**31)}\nq1 0 d3 -1\nq1 0 d4 007\n")
    assert trec.read_qrels(path) == {"q1": {"d1": 2**31 - 1, "d2": -(2**31), "d3": -1, "d4": 7}}


@pytest.mark.parametrize(
    ("score", "problem"),
    [("nan", "not finite"), ("-inf", "not finite"), ("Infinity", "not finite"), ("1e999", "not finite"),
     ("1_0.5", "not a number"), ("+1.5", "not a number"), ("\u0661.5", "not a number"), ("0x10", "not a number"),
     ("1.5.2", "not a number"), ("e5", "not a number")],
)
def test_scores_are_finite_plain_numbers(tmp_path: Path, score: str, problem: str) -> None:
    path = write(tmp_path / "r.trec", f"q1 Q0 d1 1 {score} t\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}:1: score {score!r} is {problem}")):
        trec.read_run(path)


def test_plain_score_forms_are_read(tmp_path: Path) -> None:
    lines = ["q Q0 a 1 -1.5e-3 t", "q Q0 b 2 1e+20 t", "q Q0 c 3 .5 t", "q Q0 d 4 5. t", "q Q0 e 5 -0 t"]
    path = write(tmp_path / "r.trec", "\n".join(lines) + "\n")
    assert trec.read_run(path) == {"q": {"a": -1.5e-3, "b": 1e20, "c": 0.5, "d": 5.0, "e": 0.0}}


# --- ids -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"_id": "a b", "text": "x"}, "document id (key '_id') 'a b' contains whitespace U+0020"),
        ({"_id": "a\tb", "text": "x"}, "contains whitespace U+0009"),
        ({"_id": "a\u00a0b", "text": "x"}, "contains whitespace U+00A0"),
        ({"_id": "a\x01", "text": "x"}, "contains the control character U+0001"),
        ({"_id": "a\x85", "text": "x"}, "contains whitespace U+0085"),
        ({"_id": "\ufeffa", "text": "x"}, "contains a byte order mark U+FEFF"),
        ({"_id": "a\ud800", "text": "x"}, "contains a lone surrogate U+D800"),
        ({"_id": "", "text": "x"}, "document id (key '_id') is empty"),
        ({"_id": ["a"], "text": "x"}, "must be a string or an integer, found an array"),
        ({"_id": True, "text": "x"}, "must be a string or an integer, found a boolean"),
        ({"_id": 1.5, "text": "x"}, "must be a string or an integer, found a number"),
        ({"_id": "a", "text": 5}, "key 'text' must be a string, found a number"),
        ({"_id": "a", "text": "x", "title": {"t": 1}}, "key 'title' must be a string, found an object"),
        ({"_id": "a", "text": "bad \udc00 text"}, "key 'text' contains a lone surrogate U+DC00"),
        ({"_id": "a", "title": "\ud83d", "text": "x \u00e9"}, "key 'title' contains a lone surrogate U+D83D"),
    ],
)
def test_bad_ids_and_values_in_jsonl_corpus(tmp_path: Path, beir: SimpleNamespace, row: dict, message: str) -> None:
    path = beir.write_jsonl(tmp_path / "c.jsonl", [{"_id": "ok", "text": "fine"}, row])  # surrogates as \\u escapes
    with pytest.raises(FormatError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(message)):
        corpus(path)
    beir_path = beir.write_jsonl(tmp_path / "b" / "corpus.jsonl", [{"_id": "ok", "text": "fine"}, row])
    with pytest.raises(FormatError, match=re.escape(message)):
        list(iter_beir_corpus(beir_path))


def test_good_unicode_ids_and_texts(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", '{"_id": "caf\\u00e9-\\ud83d\\ude00", "text": "x \\ud83d\\ude00", '
                                       '"title": "\\u00e9"}\n{"_id": 42, "text": "int id"}\n')
    assert corpus(path) == [Document("café-😀", "x 😀", "é"), Document("42", "int id")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("r.trec", "q1 Q0 d\x7f 1 1 t\n", "docid 'd\\x7f' contains the control character U+007F"),
        ("q.txt", "q\x01 0 d1 1\n", "query id 'q\\x01' contains the control character U+0001"),
        ("q.tsv", "1 2\tquery text\n", "query id '1 2' contains whitespace U+0020"),
        ("q.jsonl", '{"_id": "a b", "text": "x"}\n', "query id (key '_id') 'a b' contains whitespace"),
        ("t.txt", "<top>\n<num> Number: 3\x02\n<title> x\n</top>\n",
         "query id '3\\x02' contains the control character"),
        ("c.tsv", "d\x1b\tx\n", "document id 'd\\x1b' contains the control character U+001B"),
        ("c.sgml", "<DOC><DOCNO>FT 1</DOCNO></DOC>\n", "document id (<DOCNO>) 'FT 1' contains whitespace"),
    ],
)
def test_ids_trec_cannot_carry(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write(tmp_path / name, content)
    read = {"r": trec.read_run, "q": trec.read_qrels if name.endswith("txt") else read_queries, "t": read_queries,
            "c": corpus}[name[0]]
    with pytest.raises(FormatError, match=re.escape(f"{path}:") + r"\d+: " + re.escape(message)):
        read(path)


def test_long_ids_are_read(tmp_path: Path) -> None:
    docid = "d" * 1_000_000
    assert corpus(write(tmp_path / "c.tsv", f"{docid}\tx\n"))[0].docid == docid
    path = write(tmp_path / "r.trec", f"q1 Q0 {docid} 1 1 t\n")
    assert list(trec.read_run(path)["q1"]) == [docid]
    with pytest.raises(FormatError, match=r"\.\.\. \(1000001 characters\) contains whitespace"):
        corpus(write(tmp_path / "c.jsonl", json.dumps({"_id": docid + " ", "text": "x"}) + "\n"))


def test_writers_refuse_what_readers_refuse(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="docid .*'a b' contains whitespace"):
        Run({"q": {"a b": 1.0}}).to_trec(tmp_path / "r.trec")
    with pytest.raises(FormatError, match="score nan of docid 'a' for query 'q' is not finite"):
        Run({"q": {"a": float("nan")}}).to_trec(tmp_path / "r.trec")
    with pytest.raises(FormatError, match="grade .* does not fit a signed 32-bit integer"):
        Qrels({"q": {"a": 2**40}}).to_trec(tmp_path / "q.txt")
    assert not (tmp_path / "r.trec").exists() and not (tmp_path / "q.txt").exists()


# --- JSON ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    ['{"_id": "1", "text": ' + "[" * 100_000, '{"_id": "1", "text": "x", "m": ' + "[" * 100_000 + "]" * 100_000 + "}",
     '{"_id": ' + "1" * 5000 + ', "text": "x"}', "[" * 100_000],
    ids=["deep-open", "deep-closed", "long-int", "deep-top"],
)
def test_pathological_json_is_a_format_error(tmp_path: Path, line: str) -> None:
    for path, read in ((tmp_path / "c.jsonl", corpus), (tmp_path / "q.jsonl", read_queries)):
        write(path, '{"_id": "0", "text": "ok"}\n' + line + "\n")
        with pytest.raises(FormatError, match=re.escape(f"{path}:2: ")):
            read(path)


# --- load_dataset and paths ----------------------------------------------------------------------------------


def test_load_dataset_keyword_only_loose_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "topics.tsv", "1\tfirst\n2\tsecond\n")
    write(tmp_path / "qrels.txt", "1 0 d1 1\n2 0 d2 0\n")
    write(tmp_path / "docs.jsonl", '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n')
    ds = load_dataset(queries="topics.tsv", qrels="qrels.txt", corpus="docs.jsonl")  # the README example
    assert ds.name == "topics" and [q.qid for q in ds.queries] == ["1", "2"]
    assert ds.qrels.to_dict() == {"1": {"d1": 1}, "2": {"d2": 0}} and ds.docs_count() == 2
    assert load_dataset(queries=tmp_path / "topics.tsv").docs_count() == 0
    assert load_dataset("named", queries="topics.tsv").name == "named"  # positional forms keep working
    with pytest.raises(DatasetError, match="nothing to load"):
        load_dataset()
    with pytest.raises(DatasetError, match="also need queries="):
        load_dataset(qrels="qrels.txt")


def test_folders_and_missing_files_are_named(tmp_path: Path) -> None:
    queries = write(tmp_path / "q.tsv", "1\tx\n")
    (tmp_path / "dir").mkdir()
    for kwargs, what in (({"queries": tmp_path / "dir"}, "queries"), ({"queries": queries, "qrels": tmp_path / "dir"},
                                                                      "qrels"),
                         ({"queries": queries, "corpus": tmp_path / "dir"}, "corpus")):
        with pytest.raises(DatasetError, match=re.escape(f"{what} file expected, but {tmp_path / 'dir'} is a folder")):
            load_dataset(**kwargs)
    for read in (trec.read_run, trec.read_qrels, Run.from_trec, Qrels.from_trec):
        with pytest.raises(FormatError, match=re.escape(f"{tmp_path / 'dir'}: is a folder, not a file")):
            read(tmp_path / "dir")
        with pytest.raises(FormatError, match=re.escape(f"{tmp_path / 'nope'}: file not found")):
            read(tmp_path / "nope")
    with pytest.raises(DatasetError, match="corpus file expected, but .* is a folder"):
        iter_corpus(tmp_path / "dir")
    with pytest.raises(DatasetError, match="queries file not found"):
        read_queries(tmp_path / "nope")


def test_unclosed_xml_topics_fail_fast(tmp_path: Path) -> None:
    path = write(tmp_path / "t.xml", "<topics>\n" + '<topic number="1">' * 20_000)
    with pytest.raises(FormatError, match=re.escape(f"{path}:2: <topic> never closed by </topic>")):
        read_queries(path)


# --- fuzz ------------------------------------------------------------------------------------------------------

_INSERTS = [b"\x00", b"\r", b"\n", b"\t", b" ", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"{", b"[", b'"', b"\\ud800",
            b"<", b">", b"-", b"+", b"_", b"9" * 12, b"nan", b"\xc2\xa0", b"\xe2\x80\xa8", b"\x1c", b"<DOC>", b"</DOC>",
            b"<topic>", b"</topic>", b"<num>", b"<top>", b"</top>", b"[" * 3000, b"1" * 5000]


def _mutate(rnd: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randint(0, len(out))
        op = rnd.random()
        if op < 0.3 and out:
            out[min(i, len(out) - 1)] = rnd.randrange(256)
        elif op < 0.65:
            out[i:i] = rnd.choice(_INSERTS)
        elif op < 0.75:
            del out[i:]
        elif op < 0.9:
            out += out[:i]
        else:
            out = bytearray(out.replace(b"\t", b" ") if rnd.random() < 0.5 else out.replace(b" ", b"\t"))
    return bytes(out)


@pytest.mark.parametrize(("name", "content", "read"), READERS, ids=IDS)
def test_fuzzed_bytes_raise_only_rankkit_errors(tmp_path: Path, name: str, content: str,
                                                read: Callable[[Path], Any]) -> None:
    rnd = random.Random(f"rankkit-{name}")
    for i in range(60):
        data = _mutate(rnd, content.encode())
        path = tmp_path / name
        if i % 6 == 0:  # gzip variants; every other one with the compressed bytes mutated too
            path, data = tmp_path / f"{name}.gz", gzip.compress(data)
            data = _mutate(rnd, data) if i % 12 == 0 else data
        path.write_bytes(data)
        try:
            read(path)
        except RankkitError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{type(exc).__name__} from {name} on {path.read_bytes()[:300]!r}: {exc}")


# --- real collections ------------------------------------------------------------------------------------------


def test_real_collections_load_with_strict_readers(data_dir: Path) -> None:
    scifact = data_dir / "beir" / "scifact"
    for split, queries, judgements in (("test", 300, 339), ("train", 809, 919)):
        ds = load_beir_folder(scifact, split)
        assert (len(ds.queries), ds.qrels.num_judgements) == (queries, judgements)
    assert ds.docs_count() == 5183 and len({d.docid for d in ds.docs_iter()}) == 5183
    assert sum(1 for _ in iter_corpus(scifact / "corpus.jsonl")) == 5183
    assert len(read_queries(scifact / "queries.jsonl")) == 1109
    dl19 = Qrels.from_trec(data_dir / "trec-dl-2019" / "2019qrels-pass.txt")
    assert (len(dl19), dl19.num_judgements) == (43, 9260)
