"""DUQGen's query generation: a few-shot prompt per document, batched generation, the cleaning rules, resume.

DUQGen (Chandradevan et al., NAACL 2024) prompts an LLM with a few "Document / Relevant
Query" examples and the target document (truncated to its first ``doc_words`` words)
and keeps one cleaned query per document. The prompt is a data file
(:class:`QueryTemplate`, ``rankkit/synth/templates/duqgen.toml`` or any ``.toml`` with
the same fields); few-shot examples come from a small JSONL file of
``{"document": ..., "query": ...}`` lines (:func:`read_fewshot`), or none. For a chat
model each example is one exchange (a user turn with the document, an assistant turn
with the query) before the target document's turn: small instruction models follow
that pattern far better than examples pasted into one message.

:func:`clean_query` applies the paper's post-processing to a raw generation and says why
a generation was dropped: keep the first non-blank line, cut after the first ``?``,
strip boilerplate (a leading "Relevant Query:"/"Query:"-style label, numbering, quotes),
keep the first sentence (the "?" rule extended to "." and "!", since queries may be
claims, as in SciFact), then drop it if it is empty, has non-ASCII characters, is
longer than ``max_words`` words (rankkit's addition: small models often run on, copying
the abstract), copies the document (it appears verbatim in the document and has at
least ``copy_min_words`` words) or repeats an earlier query.

:func:`generate_queries` runs generation through :class:`rankkit.llm.Generator` in fixed
batches (documents in sample order, ``batch_size`` at a time; with sampling, batch ``i``
is seeded with ``seed + i``) and appends each finished batch to a JSONL log. A killed
run started again with the same log continues after the last finished batch, and gives
what an uninterrupted run gives.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankkit.data._io import iter_jsonl
from rankkit.errors import ConfigError, FormatError
from rankkit.types import Document

log = logging.getLogger(__name__)

__all__ = ["Generation", "QueryTemplate", "clean_query", "generate_queries", "load_query_template", "read_fewshot"]

TEMPLATE_DIR = Path(__file__).parent / "templates"

# a label the model puts before its query ("Relevant Query:", "Query 1:", "Search query -", "Q:")
_LABEL = re.compile(r"^\s*(?:(?:here(?:'s| is)\s+(?:a|the|my)\s+)?(?:relevant\s+|search\s+|generated\s+)?"
                    r"(?:query|question)(?:\s*\d+)?|q)\s*[:\-]\s*", re.IGNORECASE)
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


@dataclass(frozen=True)
class QueryTemplate:
    """A query-generation prompt: ``system`` text and a ``user`` turn with ``{document}``."""

    name: str
    system: str
    user: str

    def messages(self, document: str, examples: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
        """The chat messages for one document, each few-shot ``(document, query)`` example an exchange before it."""
        out = [{"role": "system", "content": self.system}] if self.system.strip() else []
        for doc, query in examples:
            out += [{"role": "user", "content": self.user.format(document=doc)},
                    {"role": "assistant", "content": query}]
        return out + [{"role": "user", "content": self.user.format(document=document)}]


def load_query_template(name_or_path: str = "duqgen") -> QueryTemplate:
    """A built-in template by name (``duqgen``) or a ``.toml`` file; a missing field or placeholder is an error."""
    path = Path(name_or_path) if name_or_path.endswith(".toml") else TEMPLATE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.toml"))
        raise ConfigError(f"query template {name_or_path!r} not found: built-in templates are {known} "
                          "(or give a path to a .toml file)")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"not valid TOML ({exc})", path) from None
    missing = [k for k in ("system", "user") if not isinstance(data.get(k), str)]
    if missing:
        raise FormatError(f"query template needs text fields {missing}", path)
    if "{document}" not in data["user"]:
        raise FormatError("query template field 'user' lacks the placeholder {document}", path)
    try:
        data["user"].format(document="")
    except (KeyError, IndexError, ValueError) as exc:
        raise FormatError(f"query template field 'user' has a placeholder other than {{document}} ({exc!r}); "
                          "write a literal brace as {{ or }}", path) from None
    return QueryTemplate(str(data.get("name", path.stem)), data["system"], data["user"])


def truncate_words(text: str, words: int) -> str:
    """The first ``words`` whitespace-separated words of ``text``."""
    parts = text.split()
    return " ".join(parts[:words])


def read_fewshot(path: str | os.PathLike[str], doc_words: int = 512) -> list[tuple[str, str]]:
    """Few-shot ``(document, query)`` pairs from a JSONL file of ``{"document": ..., "query": ...}`` lines.

    A missing or non-text field, or an empty file, is a :class:`FormatError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError("few-shot file not found", path)
    pairs = []
    for lineno, obj in iter_jsonl(path):
        for key in ("document", "query"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise FormatError(f"few-shot example needs a non-empty text field {key!r}", path, lineno)
        pairs.append((truncate_words(obj["document"], doc_words), " ".join(obj["query"].split())))
    if not pairs:
        raise FormatError("few-shot file has no examples", path)
    return pairs


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def clean_query(raw: str, document: str = "", seen: set[str] | None = None, copy_min_words: int = 4,
                max_words: int | None = None) -> tuple[str | None, str]:
    """DUQGen's cleaning of one raw generation: ``(query, "ok")`` or ``(None, reason)``.

    Reasons: ``empty``, ``non_ascii``, ``too_long``, ``copies_document``, ``duplicate``.
    ``seen`` holds the normalised queries kept so far (a kept query is added to it).
    """
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    for _ in range(3):  # labels, numbering and quotes can nest: '1. Query: "..."'
        text = _NUMBERING.sub("", _LABEL.sub("", text)).strip().strip(_QUOTES).strip()
    if "?" in text:  # the paper's rule
        text = text[:text.index("?") + 1]
    end = re.search(r"[!.](?=\s+[A-Z(\[\"]|\s*$)", text)  # the first sentence ("C. albicans" is one)
    if end:
        text = text[:end.end()]
    text = " ".join(text.split()).strip(_QUOTES).strip()
    if not re.search(r"\w", text):
        return None, "empty"
    if not text.isascii():
        return None, "non_ascii"
    norm = _normal(text)
    if max_words is not None and len(text.split()) > max_words:
        return None, "too_long"
    if len(norm.split()) >= copy_min_words and f" {norm} " in f" {_normal(document)} ":
        return None, "copies_document"
    if seen is not None:
        if norm in seen:
            return None, "duplicate"
        seen.add(norm)
    return text, "ok"


@dataclass
class Generation:
    """What query generation produced: ``queries`` (docid -> query), drop ``reasons``, throughput."""

    queries: dict[str, str] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    raw: dict[str, str] = field(default_factory=dict)
    generated_tokens: int = 0
    generation_s: float = 0.0
    resumed_docs: int = 0

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of generation (this process's batches only)."""
        return self.generated_tokens / self.generation_s if self.generation_s else 0.0


def _read_log(path: Path) -> list[dict[str, Any]]:
    """Finished batches of an earlier run; a torn last line (a kill mid-write) is cut off the file."""
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    if len(rows) < len(lines):  # appending after the fragment would tear the next run's read
        from rankkit.trec import atomic_write

        with atomic_write(path) as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def generate_queries(docs: Sequence[Document], model: Any, tokenizer: Any, template: QueryTemplate,
                     fewshot: Sequence[tuple[str, str]] = (), *, doc_words: int = 512, max_new_tokens: int = 64,
                     batch_size: int = 8, temperature: float = 0.0, seed: int = 0, copy_min_words: int = 4,
                     max_words: int | None = 32, log_path: str | os.PathLike[str] | None = None,
                     show_progress: bool = True) -> Generation:
    """One cleaned query per document where the generator gives a usable one (see the module docstring).

    ``log_path`` (JSONL, one line per batch) makes the run resumable: batches already in it
    are not generated again. Documents without a usable query are counted by reason and skipped.
    """
    from tqdm.auto import tqdm

    from rankkit.llm import GenerationSettings, Generator, render_chat

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    out = Generation()
    path = Path(log_path) if log_path else None
    done: dict[int, dict[str, str]] = {}
    for row in _read_log(path) if path else []:
        done[int(row["batch"])] = row["raw"]
    batches = [list(docs[i:i + batch_size]) for i in range(0, len(docs), batch_size)]
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a", encoding="utf-8") if path else None
    try:
        for b, batch in enumerate(tqdm(batches, desc="query generation", unit="batch", disable=not show_progress)):
            if b in done and set(done[b]) == {d.docid for d in batch}:
                out.raw.update(done[b])
                out.resumed_docs += len(batch)
                continue
            settings = GenerationSettings(max_new_tokens=max_new_tokens, stop=("\n",), temperature=temperature,
                                          seed=seed + b if temperature > 0 else None, include_stop=False)
            gen = Generator(model, tokenizer, settings)
            prompts = [render_chat(tokenizer, template.messages(truncate_words(d.contents, doc_words), fewshot))
                       for d in batch]
            t0 = time.perf_counter()
            texts = gen.generate(prompts)
            out.generation_s += time.perf_counter() - t0
            out.generated_tokens += gen.stats["generated_tokens"]
            raw = {d.docid: t for d, t in zip(batch, texts)}
            out.raw.update(raw)
            if fh:
                fh.write(json.dumps({"batch": b, "raw": raw}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        if fh:
            fh.close()
    if out.resumed_docs:
        log.info("query generation resumed: %d documents' generations read back from %s", out.resumed_docs, path)
    seen: set[str] = set()
    for d in docs:
        query, reason = clean_query(out.raw[d.docid], d.contents, seen, copy_min_words, max_words)
        out.reasons[reason] += 1
        if query is not None:
            out.queries[d.docid] = query
    dropped = {k: v for k, v in out.reasons.items() if k != "ok"}
    log.info("query generation: %d of %d documents got a query; dropped %s; %.1f generated tokens/s",
             len(out.queries), len(docs), dropped or "none", out.tokens_per_second)
    return out
