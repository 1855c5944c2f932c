"""DUQGen query generation: the cleaning rules, the prompt template, the few-shot reader, resumable generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankkit.errors import ConfigError, FormatError
from rankkit.synth.querygen import (QueryTemplate, clean_query, generate_queries, load_query_template, read_fewshot,
                                    truncate_words)
from rankkit.types import Document

DOC = "Vitamin D and bone health. We studied 412 women who took vitamin D for two years in a randomised trial."

# raw generation -> (query or None, reason)
CLEANING = [
    ("What is the effect of vitamin D on bones?", ("What is the effect of vitamin D on bones?", "ok")),
    ("Relevant Query: does vitamin D help bones? Yes it does.", ("does vitamin D help bones?", "ok")),
    ('Query: "statins and diabetes risk"', ("statins and diabetes risk", "ok")),
    ("1. Search query - coffee and sleep", ("coffee and sleep", "ok")),
    ("  \n\nvitamin D fractures\nsecond line ignored", ("vitamin D fractures", "ok")),
    ("Statins raise diabetes risk. They also lower LDL.", ("Statins raise diabetes risk.", "ok")),
    ("C. albicans ages in a unique way. More text.", ("C. albicans ages in a unique way.", "ok")),
    ("Here is a query: gut microbes after antibiotics", ("gut microbes after antibiotics", "ok")),
    ("", (None, "empty")),
    ("Query: ?", (None, "empty")),
    ("\"\"", (None, "empty")),
    ("Wirkung von Vitamin D auf Knochen für Frauen", (None, "non_ascii")),
    ("We studied 412 women who took vitamin D", (None, "copies_document")),
    ("vitamin D", ("vitamin D", "ok")),  # short phrases are not copies, although they occur in the document
    (" ".join(["word"] * 40), (None, "too_long")),
]


@pytest.mark.parametrize(("raw", "expected"), CLEANING)
def test_cleaning_rules(raw: str, expected: tuple[str | None, str]) -> None:
    assert clean_query(raw, DOC, set(), max_words=32) == expected


def test_duplicates_are_dropped_after_normalisation() -> None:
    seen: set[str] = set()
    assert clean_query("Does vitamin D help?", DOC, seen) == ("Does vitamin D help?", "ok")
    assert clean_query("does  Vitamin-D help?", DOC, seen) == (None, "duplicate")
    assert clean_query("Does vitamin D help?", DOC, None)[1] == "ok"  # no memory without a seen set


def test_template_renders_examples_as_exchanges() -> None:
    t = load_query_template("duqgen")
    msgs = t.messages("target doc", [("doc one", "query one")])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "Document: doc one" and msgs[2]["content"] == "query one"
    assert msgs[-1]["content"] == "Document: target doc"
    assert QueryTemplate("x", "", "D: {document}").messages("d")[0] == {"role": "user", "content": "D: d"}


def test_template_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="built-in templates are"):
        load_query_template("nope")
    bad = tmp_path / "t.toml"
    bad.write_text('system = "s"\nuser = "no placeholder"\n')
    with pytest.raises(FormatError, match="placeholder"):
        load_query_template(str(bad))
    bad.write_text('system = "s"\nuser = "{document} {other}"\n')
    with pytest.raises(FormatError, match="other than"):
        load_query_template(str(bad))
    bad.write_text('user = "{document}"\n')
    with pytest.raises(FormatError, match=r"t\.toml.*system"):
        load_query_template(str(bad))
    bad.write_text("user = [\n")
    with pytest.raises(FormatError, match="TOML"):
        load_query_template(str(bad))


def test_fewshot_reader(tmp_path: Path) -> None:
    f = tmp_path / "shots.jsonl"
    f.write_text(json.dumps({"document": "one two three four", "query": " q  one "}) + "\n\n")
    assert read_fewshot(f, doc_words=2) == [("one two", "q one")]
    f.write_text(json.dumps({"document": "d", "query": "q"}) + "\n" + json.dumps({"document": "d"}) + "\n")
    with pytest.raises(FormatError, match=r"shots\.jsonl:2: .*'query'"):
        read_fewshot(f)
    f.write_text(json.dumps({"document": "", "query": "q"}) + "\n")
    with pytest.raises(FormatError, match=r"jsonl:1: .*'document'"):
        read_fewshot(f)
    f.write_text("")
    with pytest.raises(FormatError, match="no examples"):
        read_fewshot(f)
    with pytest.raises(FormatError, match="not found"):
        read_fewshot(tmp_path / "missing.jsonl")


def test_truncate_words() -> None:
    assert truncate_words(" a  b\nc d ", 3) == "a b c"


def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"the cell protein {i} gene expression of tumour patients", f"Doc {i}") for i in range(n)]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_resumed_generation_equals_an_uninterrupted_run(tiny_llm: Path, tmp_path: Path, temperature: float) -> None:
    from rankkit.llm import load_causal_lm

    model, tok = load_causal_lm(str(tiny_llm), device="cpu")
    t = load_query_template()
    docs = _docs(7)
    kwargs = {"batch_size": 3, "max_new_tokens": 6, "temperature": temperature, "seed": 5, "show_progress": False}
    full = generate_queries(docs, model, tok, t, log_path=tmp_path / "full.jsonl", **kwargs)
    # a run killed after its first batch, mid-way through writing the second line
    lines = (tmp_path / "full.jsonl").read_text().splitlines()
    assert len(lines) == 3
    (tmp_path / "killed.jsonl").write_text(lines[0] + "\n" + lines[1][:20])
    resumed = generate_queries(docs, model, tok, t, log_path=tmp_path / "killed.jsonl", **kwargs)
    assert resumed.resumed_docs == 3
    assert resumed.raw == full.raw
    assert resumed.queries == full.queries and resumed.reasons == full.reasons
    # the torn fragment was cut before appending: a second resume reads every batch back
    assert generate_queries(docs, model, tok, t, log_path=tmp_path / "killed.jsonl", **kwargs).resumed_docs == 7
    # nothing left to generate: everything comes from the log
    again = generate_queries(docs, model, tok, t, log_path=tmp_path / "full.jsonl", **kwargs)
    assert again.resumed_docs == 7 and again.generated_tokens == 0 and again.raw == full.raw


def test_unusable_generations_are_counted_and_skipped(tiny_llm: Path) -> None:
    from rankkit.llm import load_causal_lm

    model, tok = load_causal_lm(str(tiny_llm), device="cpu")
    docs = _docs(4)
    out = generate_queries(docs, model, tok, load_query_template(), batch_size=2, max_new_tokens=4,
                           show_progress=False)
    assert sum(out.reasons.values()) == 4
    assert out.reasons["ok"] == len(out.queries)
    assert set(out.queries) <= {d.docid for d in docs}
    assert out.generated_tokens > 0 and out.tokens_per_second > 0
