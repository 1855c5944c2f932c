"""Setwise prompt templates, stored as TOML data files, and their rendering into chat messages.

A template has a ``system`` message, a ``user`` message with the placeholders
``{query}`` and ``{documents}`` (and optionally ``{count}``), a ``document`` line
with ``{label}`` and ``{text}``, ``reasoning`` (whether answers carry a
``<think>`` block) and an optional ``prefix``: text that starts the assistant's
turn (``"<think>"`` makes a model begin by reasoning); generation continues after
it and answers are read with the prefix in front. Built-in templates live in ``rankkit/rerank/templates``:
``setwise-r1`` (Rank-R1, reason then answer) and ``setwise`` (answer only). A path
to any ``.toml`` file with the same fields works too. Labels are 1-based:
``[1] … [c]``. A trained adapter folder keeps its template beside the weights as
``template.toml`` (:func:`save_template`, found again by :func:`saved_template`).
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankkit.errors import ConfigError
from rankkit.llm.chat import chat_messages, render_chat

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_FILE = "template.toml"
_REQUIRED = {"user": {"query", "documents"}, "document": {"label", "text"}}
_ALLOWED = {"system": set(), "user": {"query", "documents", "count"}, "document": {"label", "text"}}


@dataclass(frozen=True)
class SetwiseTemplate:
    """A validated setwise prompt template (see the module docstring)."""

    name: str
    system: str
    user: str
    document: str
    reasoning: bool
    prefix: str = ""
    source: str = "<inline>"

    def __post_init__(self) -> None:
        for field_name, allowed in _ALLOWED.items():
            text = getattr(self, field_name)
            try:
                found = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise ConfigError(f"{self.source}: field {field_name!r} is not a valid format string ({exc}); "
                                  "write literal braces as {{ and }}") from None
            missing = _REQUIRED.get(field_name, set()) - found
            if missing:
                raise ConfigError(f"{self.source}: field {field_name!r} lacks the required placeholder(s) "
                                  + ", ".join("{" + m + "}" for m in sorted(missing)))
            unknown = found - allowed
            if unknown:
                raise ConfigError(f"{self.source}: field {field_name!r} has unknown placeholder(s) "
                                  + ", ".join("{" + u + "}" for u in sorted(unknown))
                                  + f"; allowed: {', '.join('{' + a + '}' for a in sorted(allowed)) or 'none'}")

    def messages(self, query: str, documents: Sequence[str]) -> list[dict[str, str]]:
        """The chat messages (system, user) asking for the most relevant of ``documents`` (labels 1..n)."""
        if not documents:
            raise ValueError("a setwise prompt needs at least one document (got an empty candidate list)")
        lines = "\n".join(self.document.format(label=i + 1, text=t) for i, t in enumerate(documents))
        return chat_messages(self.user.format(query=query, documents=lines, count=len(documents)), self.system)

    def target(self, label: int, reasoning: str = "") -> str:
        """The ideal answer for 1-based ``label`` (with a ``<think>`` block when the template reasons)."""
        answer = f"<answer>[{label}]</answer>"
        return f"<think> {reasoning} </think> {answer}" if self.reasoning else answer

    def prompt_text(self, tokenizer: Any, query: str, documents: Sequence[str]) -> str:
        """The full prompt string: chat template of :meth:`messages` with the generation prompt, then ``prefix``."""
        return render_chat(tokenizer, self.messages(query, documents), self.prefix)

    def to_toml(self) -> str:
        """The template as a TOML file's text (:func:`load_template` reads it back to an equal template)."""
        fields = (("name", self.name), ("reasoning", self.reasoning), ("prefix", self.prefix),
                  ("system", self.system), ("user", self.user), ("document", self.document))
        return "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else _toml_string(v)}\n" for k, v in fields)


def _toml_string(text: str) -> str:
    """A TOML basic string (double quotes; backslash, quote and control characters escaped)."""
    short = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = "".join(short.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch)
                  for ch in text)
    return f'"{out}"'


def load_template(name_or_path: str) -> SetwiseTemplate:
    """A built-in template by name (``setwise-r1``, ``setwise``) or a TOML file by path, validated.

    Raises :class:`ConfigError` naming the file and the field for a missing field, a
    missing required placeholder or an unknown placeholder.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = TEMPLATE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.toml"))
            raise ConfigError(f"unknown prompt template {name_or_path!r}; built-in: {', '.join(known)} "
                              "(or give a path to a .toml file)")
    if not path.is_file():
        raise ConfigError(f"prompt template file {path} does not exist")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for key in ("user", "document"):
        if not isinstance(data.get(key), str):
            raise ConfigError(f"{path}: field {key!r} is missing or not a string")
    unknown = set(data) - {"name", "system", "user", "document", "reasoning", "prefix"}
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    return SetwiseTemplate(name=str(data.get("name", path.stem)), system=str(data.get("system", "")),
                           user=data["user"], document=data["document"], reasoning=bool(data.get("reasoning", False)),
                           prefix=str(data.get("prefix", "")), source=str(path))


def truncate_texts(texts: Sequence[str], tokenizer: Any, max_tokens: int | None) -> list[str]:
    """Each text cut to at most ``max_tokens`` tokens of ``tokenizer`` (``None``: unchanged)."""
    if max_tokens is None:
        return list(texts)
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens)["input_ids"]
    return [tokenizer.decode(i, skip_special_tokens=True).strip() for i in ids]


def save_template(template: SetwiseTemplate, folder: str | Path) -> Path:
    """Write ``template`` as ``TEMPLATE_FILE`` into ``folder`` (an adapter folder being saved); returns the file."""
    path = Path(folder) / TEMPLATE_FILE
    path.write_text(template.to_toml(), encoding="utf-8")
    return path


def saved_template(adapter: str | Path) -> str | None:
    """The template file saved with a trained adapter folder, if any."""
    path = Path(adapter) / TEMPLATE_FILE
    return str(path) if path.is_file() else None
