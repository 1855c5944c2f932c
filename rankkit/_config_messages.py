"""Messages of :mod:`rankkit.config`: where a problem is, what a field expects, the value given.

Private to :mod:`rankkit.config`: the dotted location of a key (``train.yaml: lora.rank``),
bounded reprs of given values, phrases for annotations (``an integer >= 1``, ``one of
mean, cls``), one line per pydantic error, and hints for strings that look like numbers or
like one of a field's choices. Also the annotation helpers :mod:`rankkit.config` shares
with them (:func:`_strip`, :func:`_is_union`, :func:`_is_dataclass_type`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import annotated_types as at

if TYPE_CHECKING:
    from rankkit.config import _Spec

#: characters of a value's repr quoted in an error message
MAX_SHOWN = 80


# --- where ----------------------------------------------------------------------------------------------------


def _where(where: str, path: tuple[str | int, ...]) -> str:
    """``where`` followed by the dotted key ``path`` (``train.yaml: lora.rank``, ``BM25.k1``)."""
    dotted = ""
    for part in path:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    if not dotted:
        return where
    if not where:
        return dotted
    if dotted.startswith("["):
        return where + dotted
    if ": " in where or not _is_source(where):
        return f"{where}.{dotted}"
    return f"{where}: {dotted}"


def _is_source(where: str) -> bool:
    """Whether ``where`` names a file (``train.yaml``, ``/tmp/x``) rather than a key or a label."""
    return "/" in where or os.sep in where or where.endswith((".yaml", ".yml", ".json", ".toml"))


# --- annotations ----------------------------------------------------------------------------------------------


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _strip(hint: Any) -> Any:
    """``hint`` without ``Annotated`` wrappers."""
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    return hint


# --- messages -------------------------------------------------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = MAX_SHOWN
_repr.maxother = MAX_SHOWN
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 3


def _show(value: Any) -> str:
    """A bounded repr of a given value (at most about :data:`MAX_SHOWN` characters)."""
    try:
        text = _repr.repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real problem
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _describe(exc: Any, spec: _Spec, plain: dict[str, Any], where: str,
              path: tuple[str | int, ...]) -> list[tuple[str, str]]:
    """(field, message line) per problem of a pydantic ``ValidationError``; one line per key."""
    lines: dict[tuple[str | int, ...], tuple[str, str]] = {}
    for err in exc.errors(include_url=False, include_context=False):
        loc = tuple(err["loc"])
        if not loc or loc[0] not in plain:
            continue
        name = str(loc[0])
        key, hint, value = _walk(spec.hints[name], loc, plain[name])
        if key in lines:
            continue
        finite = err["type"] == "finite_number" or (isinstance(value, float) and not math.isfinite(value))
        message = f"{_where(where, (*path, *key))} must be {_describe_type(hint, finite)}, got {_show(value)}"
        lines[key] = (name, message + _string_number_hint(value, hint) + _choice_hint(value, hint))
    return list(lines.values())


def _walk(hint: Any, loc: tuple[Any, ...], value: Any) -> tuple[tuple[str | int, ...], Any, Any]:
    """The innermost (key path, annotation, value) of an error location that the annotation can follow.

    Lists and dicts are followed (``target_modules[1]``); a union's branches are not, so
    an error inside a union is reported for the whole field.
    """
    key: tuple[str | int, ...] = (loc[0],)
    for part in loc[1:]:
        tp = _strip(hint)
        if _is_union(tp):
            members = [a for a in typing.get_args(tp) if _strip(a) is not type(None)]
            if len(members) != 1:
                break
            tp = _strip(members[0])
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is list and isinstance(part, int) and isinstance(value, list) and part < len(value):
            hint, value = (args[0] if args else Any), value[part]
        elif origin is dict and isinstance(value, Mapping) and part in value:
            hint, value = (args[1] if len(args) == 2 else Any), value[part]
        else:
            break
        key = (*key, part if isinstance(part, int) else str(part))
    return key, hint, value


_SIMPLE = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
           str: ("a string", "strings"), type(None): ("null", "nulls")}


def _describe_type(hint: Any, finite: bool = False) -> str:
    """What a value of annotation ``hint`` is, as a phrase: ``an integer >= 1``, ``one of mean, cls``."""
    constraints: list[Any] = []
    description = None
    while typing.get_origin(hint) is Annotated:
        hint, *meta = typing.get_args(hint)
        for m in meta:
            if getattr(m, "description", None) and description is None and hasattr(m, "metadata"):
                description = m.description
            constraints.extend(getattr(m, "metadata", None) or ([m] if not hasattr(m, "metadata") else []))
    if description:
        return str(description)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint):
        parts: list[str] = []
        for arg in args:
            if _strip(arg) is not type(None):
                text = _describe_type(arg, finite)
                if text not in parts:
                    parts.append(text)
        if len(parts) > 1:
            parts = ["true, false" if p == "true or false" else p for p in parts]
        if type(None) in [_strip(a) for a in args]:
            parts.append("null")
        return _join(parts)
    if origin is Literal:
        shown = [str(a) if isinstance(a, str) else repr(a) for a in args]
        return f"{args[0]!r}" if len(args) == 1 else "one of " + ", ".join(shown)
    if hint is Any:
        return "any value"
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        inner = _plural(args[0]) if args and args[0] is not Ellipsis else "values"
        return _with_constraints(f"a list of {inner}", constraints, "list")
    if origin is dict or hint is dict:
        if len(args) == 2 and _strip(args[1]) is not Any:
            return _with_constraints(f"a mapping of {_plural(args[0])} to {_plural(args[1])}", constraints, "dict")
        return _with_constraints("a mapping", constraints, "dict")
    if _is_dataclass_type(hint):
        return "a mapping of options"
    if hint in _SIMPLE:
        base = _SIMPLE[hint][0]
        if finite and hint is float:
            base = "a finite number"
        return _with_constraints(base, constraints, hint.__name__)
    if isinstance(hint, type):
        return f"a {hint.__name__}"
    return str(hint)


def _plural(hint: Any) -> str:
    tp = _strip(hint)
    if tp in _SIMPLE:
        return _with_constraints(_SIMPLE[tp][1], _constraints_of(hint), tp.__name__)
    return "values"


def _constraints_of(hint: Any) -> list[Any]:
    out: list[Any] = []
    while typing.get_origin(hint) is Annotated:
        hint, *meta = typing.get_args(hint)
        for m in meta:
            out.extend(getattr(m, "metadata", None) or ([m] if not hasattr(m, "metadata") else []))
    return out


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _with_constraints(base: str, constraints: list[Any], kind: str) -> str:
    low = high = None
    extra: list[str] = []
    for c in constraints:
        if isinstance(c, at.Interval):
            for sub in (at.Gt(c.gt) if c.gt is not None else None, at.Ge(c.ge) if c.ge is not None else None,
                        at.Lt(c.lt) if c.lt is not None else None, at.Le(c.le) if c.le is not None else None):
                if sub is not None:
                    constraints.append(sub)
        elif isinstance(c, at.Gt):
            low = ("(", ">", c.gt)
        elif isinstance(c, at.Ge):
            low = ("[", ">=", c.ge)
        elif isinstance(c, at.Lt):
            high = (")", "<", c.lt)
        elif isinstance(c, at.Le):
            high = ("]", "<=", c.le)
        elif isinstance(c, at.MinLen):
            if kind in ("str",) and c.min_length == 1:
                base = base.replace("a string", "a non-empty string").replace("strings", "non-empty strings")
            elif kind in ("list", "dict") and c.min_length == 1:
                base = base.replace("a list", "a non-empty list").replace("a mapping", "a non-empty mapping")
            else:
                extra.append(f"of length >= {c.min_length}")
        elif isinstance(c, at.MaxLen):
            extra.append(f"of length <= {c.max_length}")
        elif isinstance(c, at.MultipleOf):
            extra.append(f"a multiple of {_num(c.multiple_of)}")
        elif getattr(c, "pattern", None):
            extra.append(f"matching {c.pattern}")
    if low and high:
        base += f" in {low[0]}{_num(low[2])}, {_num(high[2])}{high[0]}"
    elif low:
        base += f" {low[1]} {_num(low[2])}"
    elif high:
        base += f" {high[1]} {_num(high[2])}"
    return " ".join([base, *extra])


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


_YAML11_FLOAT = re.compile(r"^[-+]?(\d[\d_]*)?\.?\d*[eE][-+]?\d+$")


def _string_number_hint(value: Any, hint: Any) -> str:
    """A hint when a number arrived as a string: PyYAML reads ``5e-4`` (no dot) as text."""
    if not isinstance(value, str) or not _accepts_number(hint):
        return ""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    if _YAML11_FLOAT.match(text):
        mantissa, _, exponent = text.replace("E", "e").partition("e")
        fixed_mantissa = mantissa if "." in mantissa else mantissa + ".0"
        fixed_exponent = exponent if exponent[0] in "+-" else "+" + exponent
        if (fixed_mantissa, fixed_exponent) != (mantissa, exponent):
            return f" (YAML reads {text} as a string; write {fixed_mantissa}e{fixed_exponent})"
    return " (a string, not a number: remove the quotes)"


def _choice_hint(value: Any, hint: Any) -> str:
    """`` (did you mean 'x'?)`` for a string close to one of the annotation's literal choices."""
    if not isinstance(value, str):
        return ""
    choices = [c for c in _literals(hint) if isinstance(c, str)]
    match = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match and match[0] != value else ""


def _literals(hint: Any) -> list[Any]:
    tp = _strip(hint)
    if typing.get_origin(tp) is Literal:
        return list(typing.get_args(tp))
    if _is_union(tp):
        return [c for a in typing.get_args(tp) for c in _literals(a)]
    return []


def _accepts_number(hint: Any) -> bool:
    tp = _strip(hint)
    if _is_union(tp):
        return any(_accepts_number(a) for a in typing.get_args(tp))
    return tp in (int, float)
