"""Dataclass configs from plain mappings (YAML, ``--set``, keyword options), validated when they are read.

Every knob in rankkit lives in one dataclass; YAML maps 1:1 onto it, and
:func:`from_mapping` is the one door every config goes through (YAML files, CLI
``--set`` overrides, keyword options of stages). It checks, before anything expensive
runs:

- keys: an unknown key is an error at every nesting level, with the closest allowed key
  suggested and the allowed keys listed; a required key must be present;
- types and ranges: each field's annotation is validated by pydantic in strict mode
  (``Annotated[float, pydantic.Field(gt=0)]``, ``Literal[...]``, ``int | None`` ...).
  Strict means no silent coercion: ``"fast"``, ``True`` or ``"5e-4"`` is not a number,
  ``1.5`` is not an integer, ``"no"`` is not a boolean. An integer is accepted for a
  float field. NaN and infinity are refused. A path object is accepted for a string
  field and a tuple for a list field (keyword options from Python);
- a field whose type is itself a dataclass is read recursively from a nested mapping.
  Such a class may set ``__config_shorthand__ = "field"``: then a bare scalar stands for
  ``{field: value}`` (``model: minilm`` is ``model: {name: minilm}``);
- finally the dataclass is built, so its ``__post_init__`` cross-field checks run; a
  ``ValueError`` there is reported under the dotted key of that dataclass.

All problems found are reported together in one :class:`~rankkit.errors.ConfigError`,
one line per problem::

    train.yaml: lr must be a number > 0, got -1.0
    train.yaml: lora.rank must be an integer >= 1, got 0
    pipelines/x.yaml: stages[0].bm25: unknown key 'hitz' (did you mean 'hits'?); allowed keys: ...

Each line names where the config came from (``where``: a file, optionally followed by
``": "`` and the dotted key of the section, as in ``"pipelines/x.yaml: stages[0].bm25"``;
or a label such as ``"BM25"``), the full dotted key, what is expected (a field's
``pydantic.Field(description=...)`` when it has one, else a phrase made from its
annotation) and the value given. The lines are also on the exception as ``problems``.

:func:`~rankkit.yaml_io.load_yaml` reads a YAML file within bounds (size, nesting depth,
alias expansion, UTF-8, duplicate keys) and :func:`~rankkit.yaml_io.check_structure`
applies the same bounds to any already-parsed value; both are re-exported here. The
message helpers are in :mod:`rankkit._config_messages`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field

from rankkit._config_messages import (MAX_SHOWN, _describe, _describe_type, _is_dataclass_type, _is_union, _show,
                                      _strip, _where)
from rankkit.errors import ConfigError
from rankkit.yaml_io import MAX_DEPTH, MAX_NODES, MAX_YAML_BYTES, check_structure, load_yaml, parse_yaml

# the YAML readers (rankkit.yaml_io) and their bounds are re-exported: callers may import them from here
__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_SHOWN", "MAX_YAML_BYTES", "Device", "NonEmptyStr", "NonNegativeFloat",
           "NonNegativeInt", "PositiveFloat", "PositiveInt", "Precision", "Probability", "Seed", "apply_overrides",
           "check_file", "check_structure", "from_mapping", "load_config", "load_yaml", "parse_yaml", "to_mapping", "validate_fields"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Field types for config dataclasses (use them, or pydantic.Field constraints, in annotations).
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
                              description="one of auto, cpu, cuda, cuda:N, mps")]

#: the precision names of :mod:`rankkit.precision`
Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: Inference precision of the encoder stages (:mod:`rankkit.backends`): ``int8`` runs on ONNX Runtime.
InferencePrecision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
#: Inference back-end of the encoder stages (:mod:`rankkit.backends`).
Backend = Literal["auto", "torch", "onnx"]

_STRICT = {"strict": True, "allow_inf_nan": False, "arbitrary_types_allowed": True}


# --- from_mapping ---------------------------------------------------------------------------------------------


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``values``, validated; every problem raises one :class:`ConfigError`.

    ``where`` (e.g. ``"pipelines/bm25.yaml: stages[0].bm25"``, a file name, or a label such
    as ``"BM25"``) prefixes the messages; nested keys are appended to it as a dotted path
    (``train.yaml: lora.rank``). See the module docstring for the rules.
    """
    problems: list[str] = []
    obj = _build(cls, values, where, (), problems)
    if problems or obj is None:
        raise _config_error(problems or [f"{_where(where, ())}: invalid options"])
    return obj


def _config_error(problems: list[str]) -> ConfigError:
    exc = ConfigError("\n".join(problems))
    exc.problems = list(problems)  # type: ignore[attr-defined]
    return exc


@dataclasses.dataclass
class _Spec:
    """What :func:`from_mapping` needs to know about one dataclass (computed once per class)."""

    fields: list[str]
    hints: dict[str, Any]
    required: list[str]
    nested: dict[str, tuple[type, bool]]  # field -> (dataclass, also accepts None)
    adapter: Any  # pydantic TypeAdapter of a TypedDict over the validated fields, or None
    validated: frozenset[str]


@functools.lru_cache(maxsize=None)
def _spec(cls: type) -> _Spec:
    from pydantic import ConfigDict, TypeAdapter
    from typing_extensions import TypedDict

    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - unresolvable forward references: keys are still checked
        log.debug("no type validation for %s: %s", cls.__name__, exc)
        hints = {}
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    nested: dict[str, tuple[type, bool]] = {}
    typed: dict[str, Any] = {}
    for f in fields:
        hint = hints.get(f.name, Any)
        sub = _nested_dataclass(hint)
        if sub is not None:
            nested[f.name] = sub
        elif _strip(hint) is not Any:
            typed[f.name] = hint
    config = ConfigDict(**_STRICT)  # type: ignore[typeddict-item]

    def adapter_for(items: dict[str, Any]) -> Any:
        td = TypedDict(f"{cls.__name__}Options", items, total=False)  # type: ignore[operator]
        td.__pydantic_config__ = config  # type: ignore[attr-defined]
        return TypeAdapter(td)

    adapter = None
    if typed:
        try:
            adapter = adapter_for(typed)
        except Exception:  # noqa: BLE001 - a type pydantic cannot validate: skip just that field
            usable = {}
            for name, hint in typed.items():
                try:
                    adapter_for({name: hint})
                    usable[name] = hint
                except Exception as exc:  # noqa: BLE001
                    log.debug("no type validation for %s.%s: %s", cls.__name__, name, exc)
            typed = usable
            adapter = adapter_for(typed) if typed else None
    return _Spec([f.name for f in fields], hints, required, nested, adapter, frozenset(typed))


def _build(cls: type[T], values: Any, where: str, path: tuple[str | int, ...], problems: list[str]) -> T | None:
    """``cls`` built from ``values``, or None with the problems appended to ``problems``."""
    here = _where(where, path)
    if isinstance(values, cls):
        return values
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        problems.append(f"{here} must be a mapping of options, got {_show(values)}")
        return None
    spec = _spec(cls)
    before = len(problems)
    given = dict(values)
    for key in given:
        if key not in spec.fields:
            hint = difflib.get_close_matches(str(key), sorted(spec.fields), n=1, cutoff=0.5)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{here}: unknown key {key!r}{suggestion}; allowed keys: {', '.join(sorted(spec.fields))}")
    known = {k: v for k, v in given.items() if k in spec.fields}
    for name in spec.required:
        if name not in known:
            problems.append(f"{here}: missing required key {name!r}")
    by_field: dict[str, list[str]] = {}
    for name, (sub, optional) in spec.nested.items():
        if name not in known or isinstance(known[name], sub) or (optional and known[name] is None):
            continue
        found: list[str] = []
        built = _build_nested(sub, known[name], where, (*path, name), found, _field_default_changes(cls, name, sub),
                              optional)
        if found:
            by_field[name] = found
        else:
            known[name] = built
    plain = {k: _plain(v, spec.hints[k]) for k, v in known.items() if k in spec.validated}
    defaulted = {k: _plain(v, spec.hints[k]) for k, v in _defaults(cls).items() if k not in known}
    if (plain or defaulted) and spec.adapter is not None:
        from pydantic import ValidationError

        try:
            checked = spec.adapter.validate_python({**defaulted, **plain})
            known.update({k: v for k, v in checked.items() if k in plain})
        except ValidationError as exc:
            described = _describe(exc, spec, {**defaulted, **plain}, where, path)
            for name, line in described:
                if name in defaulted:
                    line += " (the default: give this key a value)"
                by_field.setdefault(name, []).append(line)
            if not described:  # never expected: still refuse, with pydantic's own words
                problems.append(f"{here}: {' '.join(str(exc).split())}")
    for name in spec.fields:
        problems.extend(by_field.get(name, []))
    if len(problems) > before:
        return None
    try:
        return cls(**known)
    except (TypeError, ValueError) as exc:
        lines = getattr(exc, "problems", None) or [str(exc)]
        problems.extend(f"{here}: {line}" if here else str(line) for line in lines)
        return None


def _defaults(cls: type) -> dict[str, Any]:
    """The default values of ``cls``'s validated fields (factories called), so they are checked too."""
    spec = _spec(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in spec.validated:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            try:
                out[f.name] = f.default_factory()
            except Exception:  # noqa: BLE001 - a factory that needs context: left to the class
                pass
    return out


def _field_default_changes(cls: type, name: str, sub: type) -> dict[str, Any]:
    """Where field ``name``'s default instance differs from ``sub()``: those options (the base of a nested mapping).

    So a partial section keeps the defaults of the field, not of its class: an LLM
    config's ``lora: {rank: 8}`` keeps the LLM's ``target_modules``.
    """
    f = {f.name: f for f in dataclasses.fields(cls)}[name]  # type: ignore[arg-type]
    if f.default_factory is dataclasses.MISSING:
        return {}
    try:
        default, plain = f.default_factory(), sub()
    except Exception:  # noqa: BLE001 - a class without usable defaults: nothing to carry over
        return {}
    if not isinstance(default, sub):
        return {}
    return {g.name: getattr(default, g.name) for g in dataclasses.fields(sub)  # type: ignore[arg-type]
            if g.init and getattr(default, g.name) != getattr(plain, g.name)}


def validate_fields(obj: Any, where: str | None = None) -> None:
    """Check the current field values of dataclass ``obj`` against their annotations (call it in ``__post_init__``).

    :func:`from_mapping` validates before building; this gives a dataclass built directly
    from Python (``TrainConfig(lr=-1)``) the same checks and messages. Nested dataclass
    fields are skipped (they check themselves). Raises :class:`ConfigError`; ``where``
    defaults to the class name.
    """
    spec = _spec(type(obj))
    if spec.adapter is None:
        return
    plain = {name: _plain(getattr(obj, name), spec.hints[name]) for name in spec.validated}
    from pydantic import ValidationError

    try:
        spec.adapter.validate_python(plain)
    except ValidationError as exc:
        lines = [line for _, line in _describe(exc, spec, plain, where or type(obj).__name__, ())]
        raise _config_error(lines or [f"{where or type(obj).__name__}: {' '.join(str(exc).split())}"]) from None


def _build_nested(sub: type, value: Any, where: str, path: tuple[str | int, ...], problems: list[str],
                  base: dict[str, Any], optional: bool = False) -> Any:
    """A nested dataclass field from a mapping or, with ``__config_shorthand__``, from a bare scalar.

    ``base`` holds the options in which the field's default differs from ``sub()``.
    """
    if isinstance(value, Mapping):
        return _build(sub, {**base, **value}, where, path, problems)
    shorthand = getattr(sub, "__config_shorthand__", None)
    expected = "a mapping of options"
    if shorthand:
        spec = _spec(sub)
        hint = spec.hints.get(shorthand, Any)
        ok = shorthand not in spec.validated or spec.adapter is None
        if not ok:
            from pydantic import ValidationError

            try:
                spec.adapter.validate_python({shorthand: _plain(value, hint)})
                ok = True
            except ValidationError:
                ok = False
        if ok and value is not None:
            return _build(sub, {**base, shorthand: value}, where, path, problems)
        short = _describe_type(hint).replace("true or false", "true/false")
        expected += f" or {short} (short for {{{shorthand}: ...}})"
    if optional:
        expected += " or null"
    problems.append(f"{_where(where, path)} must be {expected}, got {_show(value)}")
    return None


def _nested_dataclass(hint: Any) -> tuple[type, bool] | None:
    """(dataclass, accepts None) when ``hint`` is a dataclass type, optionally ``| None``."""
    tp = _strip(hint)
    if _is_union(tp):
        members = [_strip(a) for a in typing.get_args(tp)]
        others = [m for m in members if m is not type(None)]
        if len(others) == 1 and len(members) == 2 and _is_dataclass_type(others[0]):
            return others[0], True
        return None
    return (tp, False) if _is_dataclass_type(tp) else None


def _plain(value: Any, hint: Any) -> Any:
    """Python conveniences made YAML-like: path objects become strings, tuples lists (unless a tuple is expected)."""
    if "tuple" in repr(hint).lower():
        return value
    return _plain_value(value, 0, {})


def _plain_value(value: Any, depth: int, memo: dict[int, Any]) -> Any:
    """``value`` with path objects as strings and tuples as lists; unchanged containers are returned as they are.

    Shared sub-structures are converted once (``memo``), so a deeply shared value costs its distinct parts only.
    """
    if isinstance(value, os.PathLike) and not isinstance(value, str):
        return os.fspath(value)
    if depth >= MAX_DEPTH or not isinstance(value, (tuple, list, Mapping)):
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    memo[key] = value  # a recursive structure refers back to itself unchanged
    if isinstance(value, Mapping):
        pairs = {k: _plain_value(v, depth + 1, memo) for k, v in value.items()}
        out: Any = value if isinstance(value, dict) and all(pairs[k] is v for k, v in value.items()) else pairs
    else:
        items = [_plain_value(v, depth + 1, memo) for v in value]
        out = value if isinstance(value, list) and all(a is b for a, b in zip(items, value)) else items
    memo[key] = out
    return out


# --- to_mapping -----------------------------------------------------------------------------------------------


def to_mapping(config: Any) -> dict[str, Any]:
    """A dataclass config as a plain dict (for run cards and cache keys)."""
    return dataclasses.asdict(config)


def apply_overrides(values: Mapping[str, Any], overrides: Mapping[str, Any], cls: type | None = None,
                    where: str = "") -> dict[str, Any]:
    """``values`` with dotted ``overrides`` (``{"lora.rank": 8}``) set; ``values`` itself is not changed.

    Sections along a dotted key are copied, not modified (a YAML alias may share them). A
    section given as a bare scalar is expanded with its class's ``__config_shorthand__``
    when ``cls`` is given (``model: minilm`` plus ``model.max_length=64``); another
    non-mapping section on the way raises :class:`ConfigError`.
    """
    out = dict(values)
    for dotted, value in overrides.items():
        node, node_cls = out, cls
        *parents, leaf = str(dotted).split(".")
        for i, key in enumerate(parents):
            sub_cls = None
            if node_cls is not None and dataclasses.is_dataclass(node_cls):
                found = _nested_dataclass(_spec(node_cls).hints.get(key, Any))
                sub_cls = found[0] if found else None
            current = node.get(key)
            if current is None:
                current = {}
            elif not isinstance(current, Mapping):
                shorthand = getattr(sub_cls, "__config_shorthand__", None)
                if not shorthand:
                    section = ".".join(parents[: i + 1])
                    raise ConfigError(f"{_where(where, ())}: cannot set {dotted}: {section} is {_show(current)}, "
                                      "not a mapping of options")
                current = {shorthand: current}
            node[key] = dict(current)
            node, node_cls = node[key], sub_cls
        node[leaf] = value
    return out


def load_config(cls: type[T], path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[T, Path]:
    """Read a YAML config (training, synthesis) into dataclass ``cls`` with dotted ``overrides`` (``{"lora.rank": 8}``).

    Returns (config, the YAML's folder). Every value is validated here (see
    :func:`rankkit.config.from_mapping`), and files the config names are checked to exist
    when the class has a ``check_paths(base)`` method; errors are :class:`ConfigError`
    naming the file and the dotted key. Nothing else is loaded.
    """
    path = Path(path)
    values = load_yaml(path)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of options, got {type(values).__name__}")
    values = apply_overrides(values, overrides or {}, cls, str(path))
    cfg = from_mapping(cls, values, str(path))
    check = getattr(cfg, "check_paths", None)
    if callable(check):
        try:
            check(path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return cfg, path.parent


def check_file(key: str, value: str | None, base: Path) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``value`` (relative to ``base``) is a file; None passes."""
    if value is None:
        return
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"{key}: {path} {what}")
