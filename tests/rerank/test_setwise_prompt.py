"""Setwise prompt templates: built-ins render, and broken template files give errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit.errors import ConfigError
from rankkit.rerank.setwise_prompt import load_template


def test_builtin_templates_render_labelled_documents() -> None:
    r1 = load_template("setwise-r1")
    assert r1.reasoning and "<think>" in r1.system
    msgs = r1.messages("what is p53?", ["gene one", "gene two", "gene three"])
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "what is p53?" in user and "[1] gene one\n[2] gene two\n[3] gene three" in user and "3 documents" in user
    plain = load_template("setwise")
    assert not plain.reasoning and plain.target(2) == "<answer>[2]</answer>"
    assert r1.target(2, "x").endswith("<answer>[2]</answer>") and r1.target(2).startswith("<think>")


def _write(tmp_path: Path, user: str, document: str = "[{label}] {text}", extra: str = "") -> Path:
    path = tmp_path / "t.toml"
    path.write_text(f'system = "s"\nuser = """{user}"""\ndocument = "{document}"\n{extra}')
    return path


def test_missing_placeholder_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "Query: {query}. Pick one.")
    with pytest.raises(ConfigError, match=r"t\.toml: field 'user' lacks the required placeholder\(s\) \{documents\}"):
        load_template(str(path))
    path = _write(tmp_path, "{query} {documents}", document="{text}")
    with pytest.raises(ConfigError, match=r"field 'document' lacks the required placeholder\(s\) \{label\}"):
        load_template(str(path))


def test_unknown_placeholder_field_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"field 'user' has unknown placeholder\(s\) \{passages\}"):
        load_template(str(_write(tmp_path, "{query} {documents} {passages}")))
    with pytest.raises(ConfigError, match="unknown field"):
        load_template(str(_write(tmp_path, "{query} {documents}", extra='colour = "red"\n')))
    bad = tmp_path / "bad.toml"
    bad.write_text('user = "unterminated\n')
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_template(str(bad))
    missing = tmp_path / "m.toml"
    missing.write_text('user = "{query} {documents}"\n')
    with pytest.raises(ConfigError, match="m.toml: field 'document' is missing"):
        load_template(str(missing))
    with pytest.raises(ConfigError, match="unknown prompt template 'nope'.*setwise-r1"):
        load_template("nope")


def test_empty_candidate_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty candidate list"):
        load_template("setwise").messages("q", [])


def test_saved_template_round_trips_through_toml(tmp_path: Path) -> None:
    import dataclasses

    from rankkit.rerank.setwise_prompt import TEMPLATE_FILE, save_template, saved_template

    assert saved_template(tmp_path) is None
    tricky = dataclasses.replace(load_template("setwise-r1"), prefix="<think>",
                                 system='He said "hi"\\n\ttab, ctrl \x01 \x7f, accents é, emoji \U0001F600')
    path = save_template(tricky, tmp_path)
    assert path == tmp_path / TEMPLATE_FILE and saved_template(tmp_path) == str(path)
    back = load_template(saved_template(tmp_path))
    assert dataclasses.replace(back, source=tricky.source) == tricky
    plain = load_template("setwise")
    assert "reasoning = false" in plain.to_toml()
