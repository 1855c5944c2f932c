"""Pipelines from YAML: the ``stages`` list of a pipeline file turned into stage objects.

The work of :meth:`rankkit.pipeline.Pipeline.from_yaml`, and :func:`build_stages`: the
shape of a pipeline file and of each stage item, ``- pipeline: other.yaml`` includes
(relative paths, cycles, nesting depth), ``cutoff`` and ``fuse`` items (fusion method,
normalisation and parameters checked before any input runs; :class:`~rankkit.pipeline.Fuse`
applies the same checks), and registered stage types (:func:`rankkit.pipeline.register_stage`)
built through their dataclass configs. Every problem is a :class:`ConfigError` naming the
file and key, e.g. ``pipelines/x.yaml: stages[2].bm25.k1``.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rankkit.config import from_mapping
from rankkit.errors import ConfigError
from rankkit.pipeline import (
    _FUSE_METHODS,
    _FUSE_NORMS,
    _REGISTRY,
    MAX_NAME_LENGTH,
    Cutoff,
    Fuse,
    FuseConfig,
    Pipeline,
    Stage,
    check_name,
    describe,
    short_repr,
)
from rankkit.yaml_io import load_yaml

#: Most pipeline files a chain of ``- pipeline: other.yaml`` includes may nest.
MAX_INCLUDE_DEPTH = 32


def _did_you_mean(key: Any, allowed: Sequence[str]) -> str:
    if not isinstance(key, str):
        return ""
    hint = difflib.get_close_matches(key[:MAX_NAME_LENGTH], sorted(allowed), n=1, cutoff=0.5)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


_PIPELINE_KEYS = ("name", "description", "stages")


def _pipeline_from_file(path: Path, dataset: Any, overrides: dict[str, Any], includes: tuple[Path, ...]) -> Pipeline:
    """Load the pipeline file ``path``; ``includes`` are the (resolved) files that include it, outermost first."""
    spec = load_yaml(path)  # a missing file, a folder, bad UTF-8 or an alias bomb is a ConfigError naming the file
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a pipeline file must be a mapping with a 'stages' list, got {describe(spec)}")
    for key in spec:
        if key not in _PIPELINE_KEYS:
            raise ConfigError(f"{path}: unknown top-level key {short_repr(key)}{_did_you_mean(key, _PIPELINE_KEYS)}; "
                              f"allowed: {', '.join(_PIPELINE_KEYS)}")
    if "stages" not in spec:
        raise ConfigError(f"{path}: missing key 'stages'")
    name = spec.get("name")
    if name is not None:
        check_name(name, f"{path}: name")
    if spec.get("description") is not None and not isinstance(spec["description"], str):
        raise ConfigError(f"{path}: description must be a string, got {describe(spec['description'])}")
    items = spec["stages"]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: stages must be a non-empty list of stages, got {describe(items)}")
    stages = build_stages(items, dataset, base=path.parent, where=f"{path}: stages", overrides=overrides,
                          includes=(*includes, _resolve(path, f"{path}")))
    return Pipeline(stages, name=name or path.stem[:MAX_NAME_LENGTH])


def _resolve(path: Path, where: str) -> Path:
    """``path`` made absolute with symlinks resolved (for include-cycle detection)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loop, name too long, ...
        raise ConfigError(f"{where}: cannot resolve path {short_repr(str(path))} ({exc})") from None


#: the parameters of each ranx fusion method: (required, optional)
_FUSE_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rrf": ((), ("k",)), "rbc": (("phi",), ()), "logn_isr": ((), ("sigma",)),
    **{m: (("weights",), ()) for m in ("wsum", "mixed", "wmnz", "w_bordafuse", "w_condorcet")},
    "bayesfuse": (("log_odds",), ()), "mapfuse": (("map_scores",), ()),
    **{m: (("probs",), ()) for m in ("posfuse", "probfuse", "segfuse")}, "slidefuse": (("probs", "w"), ()),
}



def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_fuse(method: Any, norm: Any, params: Any, n_inputs: int, where: str) -> None:
    """Check a fusion's method, normalisation and parameters before any run is computed.

    Unknown methods, normalisations and parameters, missing required parameters and
    malformed values (e.g. ``weights`` that are not one finite number per input) raise
    :class:`ConfigError` naming ``where`` and the key.
    """
    if method not in _FUSE_METHODS:
        raise ConfigError(f"{where}.method: unknown fusion method {short_repr(method)}"
                          f"{_did_you_mean(method, _FUSE_METHODS)}; choose one of {', '.join(_FUSE_METHODS)}")
    if norm is not None and norm not in _FUSE_NORMS:
        raise ConfigError(f"{where}.norm: unknown normalisation {short_repr(norm)}{_did_you_mean(norm, _FUSE_NORMS)}; "
                          f"choose null or one of {', '.join(_FUSE_NORMS)}")
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}.params must be a mapping of {method} parameters, got {describe(params)}")
    required, optional = _FUSE_PARAMS.get(method, ((), ()))
    allowed = (*required, *optional)
    for key in params:
        if key not in allowed:
            accepts = f"accepts {', '.join(allowed)}" if allowed else "takes no parameters"
            raise ConfigError(f"{where}.params: unknown parameter {short_repr(key)}{_did_you_mean(key, allowed)}; "
                              f"{method} {accepts}")
    for key in required:
        if key not in params:
            raise ConfigError(f"{where}.params.{key}: missing; {method} needs {', '.join(required)}")
    for key, value in params.items():
        here = f"{where}.params.{key}"
        if key in ("weights", "map_scores"):
            if not isinstance(value, (list, tuple)) or len(value) != n_inputs or not all(_is_number(v) for v in value):
                raise ConfigError(f"{here} must be a list of {n_inputs} finite numbers (one per input), "
                                  f"got {describe(value)}")
        elif key in ("probs", "log_odds"):
            if not isinstance(value, (list, tuple)) or len(value) != n_inputs:
                raise ConfigError(f"{here} must be a list with one entry per input ({n_inputs}), got {describe(value)}")
        elif key == "k":
            if not _is_number(value) or value < 0:
                raise ConfigError(f"{here} must be a finite number >= 0, got {describe(value)}")
        elif key == "phi":
            if not _is_number(value) or not 0 <= value < 1:
                raise ConfigError(f"{here} must be a number in [0, 1), got {describe(value)}")
        elif key == "sigma":
            if not _is_number(value) or value <= 0:
                raise ConfigError(f"{here} must be a finite number > 0, got {describe(value)}")
        elif key == "w" and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise ConfigError(f"{here} must be an integer >= 1, got {describe(value)}")


def _load_builtin_stages() -> None:
    # Importing these modules registers their stage types; done lazily (heavy deps).
    import rankkit.rerank.cross_encoder
    import rankkit.rerank.setwise
    import rankkit.rerank.tsprank
    import rankkit.retrieve.bm25
    import rankkit.retrieve.dense  # noqa: F401


def _apply_overrides(config_cls: type, values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    names = {f for f in getattr(config_cls, "__dataclass_fields__", {})}
    merged = {k: v for k, v in overrides.items() if k in names}
    merged.update(values)
    return merged


def _relative_to(base: Path, value: Any) -> Any:
    """A string option starting with ``./`` or ``../`` is a path relative to the YAML file's folder."""
    if isinstance(value, str) and value.startswith(("./", "../")):
        return str((base / value).resolve())
    return value


def check_pipeline_file(target: Path, where: str, shown: str | None = None, what: str = "pipeline file") -> None:
    """:class:`ConfigError` naming ``where`` unless ``target`` is an existing file (not a folder).

    ``shown`` is the value as the user wrote it (default: ``target``); ``what`` names the file in messages.
    """
    shown = short_repr(shown if shown is not None else str(target))
    try:
        is_dir, exists = target.is_dir(), target.exists()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {shown} ({exc.strerror or exc})") from None
    if is_dir:
        raise ConfigError(f"{where}: {shown} is a directory ({target}), not a pipeline YAML file")
    if not exists:
        raise ConfigError(f"{where}: {what} {target} not found")


def _include(value: Any, dataset: Any, base: Path, where: str, overrides: dict[str, Any],
             includes: tuple[Path, ...]) -> Pipeline:
    """The pipeline of a ``- pipeline: other.yaml`` include (``where`` names the including file and key)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be the path of a pipeline YAML file, got {describe(value)}")
    target = base / value
    check_pipeline_file(target, where, value, "included pipeline file")
    resolved = _resolve(target, where)
    if resolved in includes:
        chain = [*includes, resolved]  # from the outermost file; the cycle starts at the first repeat
        raise ConfigError(f"{where}: pipeline include cycle: {' -> '.join(str(p) for p in chain)}")
    if len(includes) >= MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{where}: pipeline includes nest deeper than {MAX_INCLUDE_DEPTH} files "
                          f"(outermost: {includes[0]})")
    return _pipeline_from_file(target, dataset, overrides, includes)


def _stage_types() -> list[str]:
    return sorted([*_REGISTRY, "pipeline", "cutoff", "fuse"])


def build_stages(
    items: Any, dataset: Any, base: Path, where: str, overrides: dict[str, Any] | None = None,
    *, includes: Sequence[Path] = (),
) -> list[Stage]:
    """Turn a YAML ``stages`` list into stage objects (see :meth:`Pipeline.from_yaml`).

    ``items`` is a list of stages (a single stage or a pipeline file name counts as a list
    of one); each stage is a mapping with exactly one key, its type. ``where`` prefixes
    error messages (e.g. ``"x.yaml: stages"``), which then name the item and key, e.g.
    ``x.yaml: stages[2].bm25.k1``. ``includes`` are the resolved pipeline files being
    loaded around these stages (an include of one of them is a cycle).
    """
    _load_builtin_stages()
    overrides = overrides or {}
    chain = tuple(includes)
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where} must be a non-empty list of stages, got {describe(items)}")
    out: list[Stage] = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if isinstance(item, str):  # a bare reference to another pipeline file
            item = {"pipeline": item}
        if not isinstance(item, dict):
            raise ConfigError(f"{here} must be a stage: a mapping with one key, its type (e.g. 'bm25: {{hits: 100}}'),"
                              f" got {describe(item)}")
        if len(item) != 1:
            kinds = ", ".join(short_repr(k, 40) for k in list(item)[:4]) + (", ..." if len(item) > 4 else "")
            raise ConfigError(f"{here}: a stage is a mapping with exactly one key (its type), got "
                              f"{len(item)} keys{': ' + kinds if item else ''}; write each stage as its own list item")
        (kind, values), = item.items()
        at = f"{here}.{kind}" if isinstance(kind, str) else here
        if kind == "pipeline":
            out.append(_include(values, dataset, base, at, overrides, chain))
        elif kind == "cutoff":
            out.append(Cutoff(values, where=at))
        elif kind == "fuse":
            if not isinstance(values, dict):
                raise ConfigError(f"{at} must be a mapping with 'inputs' (and 'method', 'norm', 'params', 'name'), "
                                  f"got {describe(values)}")
            cfg = from_mapping(FuseConfig, values, at)
            if not isinstance(cfg.inputs, list) or len(cfg.inputs) < 2:
                raise ConfigError(f"{at}.inputs must be a list of at least two inputs (pipeline files, stages or "
                                  f"lists of stages), got {describe(cfg.inputs)}")
            _check_fuse(cfg.method, cfg.norm, cfg.params, len(cfg.inputs), at)
            inputs = [Pipeline(build_stages(inp, dataset, base, f"{at}.inputs[{j}]", overrides, includes=chain))
                      for j, inp in enumerate(cfg.inputs)]
            out.append(Fuse(inputs, cfg.method, cfg.norm, cfg.params, cfg.name, where=at))
        elif kind in _REGISTRY:
            config_cls, factory = _REGISTRY[kind]
            if values is None:  # `- bm25:` with no options: all defaults
                values = {}
            if not isinstance(values, dict):
                raise ConfigError(f"{at} must be a mapping of {kind} options, got {describe(values)}")
            values = {k: _relative_to(base, v) for k, v in values.items()}
            cfg = from_mapping(config_cls, _apply_overrides(config_cls, values, overrides), at)
            try:
                out.append(factory(cfg, dataset, overrides))
            except ConfigError as exc:
                if str(exc).startswith(at):
                    raise
                raise ConfigError(f"{at}: {exc}") from exc
        else:
            known = _stage_types()
            raise ConfigError(f"{here}: unknown stage type {short_repr(kind)}{_did_you_mean(kind, known)}; "
                              f"known types: {', '.join(known)}")
    return out
