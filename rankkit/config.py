"""Dataclass configs from plain mappings (YAML), with errors that name the bad key.

Every knob in rankkit lives in one dataclass; YAML maps 1:1 onto it. An unknown key
is an error (not silently ignored), and the message names the file, the section and
the key, and lists the keys that are allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from rankkit.errors import ConfigError

T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys raise :class:`ConfigError`.

    A field whose type is itself a dataclass is built recursively from a nested mapping
    (errors then name the full dotted key, e.g. ``train.lora.rank``).

    ``where`` (e.g. ``"pipelines/bm25.yaml: stages[0].bm25"``) prefixes messages.
    """
    values = dict(values or {})
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of options, got {type(values).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in values:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.5)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}{suggestion}; allowed keys: {', '.join(sorted(allowed))}"
            )
    hints = _field_types(cls)
    for key, value in list(values.items()):
        sub = hints.get(key)
        if dataclasses.is_dataclass(sub) and isinstance(value, Mapping):
            values[key] = from_mapping(sub, value, f"{where}.{key}" if where else key)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _field_types(cls: type) -> dict[str, Any]:
    """Resolved field types of a dataclass (nested dataclass fields are built recursively)."""
    import typing

    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable forward references: no nesting support for this class
        return {}


def to_mapping(config: Any) -> dict[str, Any]:
    """A dataclass config as a plain dict (for run cards and cache keys)."""
    return dataclasses.asdict(config)


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file; a syntax error names the file and line."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {exc}") from exc
