"""Stages and pipelines: composable retrieval as values (PyTerrier-style operators).

A *stage* maps ``(queries, run | None) -> Run``. Retrievers ignore the incoming run;
rerankers rescore it; cutoffs and fusions transform it. Stages compose with
``a >> b`` (then), ``a % k`` (keep top k) and :func:`fuse` (ranx fusion), and a
:class:`Pipeline` is itself a stage. Pipelines are built from YAML files
(:meth:`Pipeline.from_yaml`, implemented in :mod:`rankkit.pipeline_yaml`) through a
registry of stage types (:func:`register_stage`), each with a dataclass config, so an
unknown option is an error naming the file and key.

Composite stages (:class:`Pipeline`, :class:`Fuse`) expose their inputs through
:meth:`Stage.children`, so walks over the tree (e.g. :meth:`Pipeline.stats`) reach every
stage. A cutoff is pushed into the stage before it when that stage can retrieve fewer
hits (:meth:`Stage.with_hits`): ``bm25 % 10`` searches 10 hits deep instead of 1000,
with exactly the same result.

Expensive stages can cache their output run on disk (:class:`rankkit.cache.RunCache`),
keyed by the stage's config, the corpus fingerprint, the queries and the incoming run's
fingerprint.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import numbers
import os
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from rankkit.cache import RunCache
from rankkit.config import from_mapping, to_mapping, validate_fields
from rankkit.errors import ConfigError
from rankkit.types import Query, Run, as_queries

log = logging.getLogger(__name__)

# --- config value types -----------------------------------------------------------------
# Stage configs annotate their fields with these and with the generic ones of rankkit.config
# (PositiveInt, NonNegativeFloat, Probability, Device, Precision, Seed); from_mapping validates
# them strictly (no str -> int, no 2.5 -> 2, no "no" -> True, no NaN).

#: Longest name accepted for a stage, a pipeline or an experiment entry.
MAX_NAME_LENGTH = 200

#: A stage, pipeline or run name: 1 to :data:`MAX_NAME_LENGTH` characters.
StageName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
#: A file or folder path, or a model id: 1 to 4096 characters.
PathStr = Annotated[str, Field(min_length=1, max_length=4096)]

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4


def short_repr(value: Any, limit: int = 80) -> str:
    """A bounded ``repr`` of a (possibly huge or deeply nested) config value, for error messages.

    Never walks more than a few levels and items of a container, so a YAML alias bomb or a
    million-character string costs nothing to describe.
    """
    try:
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
            return f"<an integer of {value.bit_length()} bits>"
        text = _REPR.repr(value)
    except Exception:  # e.g. an int too long to print, or a hostile __repr__
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: Any) -> str:
    """``value``'s kind and bounded repr for a message: ``a list [1, 2]``, ``a string 'abc'``, ``null``."""
    if value is None:
        return "null"
    kind = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), f"a {type(value).__name__}")
    return f"{kind} {short_repr(value)}"


def check_name(value: Any, where: str) -> str:
    """``value`` if it is a string of 1 to :data:`MAX_NAME_LENGTH` characters, else :class:`ConfigError`.

    The message names ``where`` and quotes the value in bounded form (never ``str()`` of a huge structure).
    """
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise ConfigError(f"{where} must be a name: a string of 1 to {MAX_NAME_LENGTH} characters, "
                          f"got {describe(value)}")
    return value


def _queries_hash(queries: Sequence[Query]) -> str:
    h = hashlib.sha256()
    for q in queries:
        h.update(f"{q.qid}\t{q.text}\n".encode())
    return h.hexdigest()


class Stage(abc.ABC):
    """Base class of every pipeline stage.

    Subclasses implement :meth:`transform`. Set ``cache_dir`` (or pass it to the
    constructor of an expensive stage) to cache output runs; :meth:`cache_spec`
    must then describe everything that determines the output.
    """

    name: str = "stage"
    cache_dir: Path | None = None
    #: True when ``self.with_hits(k)`` returns a stage whose output is always exactly this
    #: stage's output cut to its top ``k`` (then a pipeline drops the cutoff it pushed down;
    #: otherwise it keeps the cutoff after the pushed-down stage).
    exact_hits: bool = False

    @abc.abstractmethod
    def transform(self, queries: list[Query], run: Run | None) -> Run:
        """Produce the output run; implemented by each stage."""

    def cache_spec(self) -> dict[str, Any] | None:
        """A JSON-able description of this stage for cache keys (``None``: never cache)."""
        return None

    def children(self) -> list[Stage]:
        """The stages this one is composed of (empty for a leaf stage)."""
        return []

    def with_hits(self, k: int) -> Stage | None:
        """A copy of this stage that retrieves at most ``k`` hits per query, or ``None`` when not applicable.

        A pipeline calls it for a stage followed by ``Cutoff(k)`` and runs the copy in its
        place (keeping the cutoff unless :attr:`exact_hits`).
        """
        return None

    def __call__(self, queries: Sequence[Query] | Any, run: Run | None = None) -> Run:
        """Run the stage on ``queries`` (Query objects, ``(qid, text)`` pairs, or a mapping)."""
        queries = as_queries(queries)
        spec = self.cache_spec() if self.cache_dir is not None else None
        if spec is None:
            return self.transform(queries, run)
        cache = RunCache(self.cache_dir, "runs")
        key = {"stage": type(self).__name__, "spec": spec, "queries": _queries_hash(queries),
               "run": run.fingerprint() if run is not None else None}
        cached = cache.load(key, name=self.name)
        if cached is not None:
            return cached
        out = self.transform(queries, run)
        cache.save(key, out, tag="cache")
        return out

    def __rshift__(self, other: Stage) -> Pipeline:
        return Pipeline([self, other])

    def __mod__(self, k: int) -> Pipeline:
        return Pipeline([self, Cutoff(k)])  # the pipeline pushes the cutoff down (with_hits)

    def __or__(self, other: Stage) -> Fuse:
        return Fuse([self, other])


class Pipeline(Stage):
    """A sequence of stages applied in order; itself a stage."""

    def __init__(self, stages: Sequence[Stage], name: str | None = None) -> None:
        flat: list[Stage] = []
        for s in stages:
            if not isinstance(s, Stage):
                raise TypeError(f"pipeline stages must be Stage objects, got {type(s).__name__}")
            flat.extend(s.stages if isinstance(s, Pipeline) and s.name == Pipeline.name else [s])
        if not flat:
            raise ConfigError("a pipeline needs at least one stage")
        if name is not None:
            check_name(name, "pipeline name")
        self.stages = _push_cutoffs(flat)
        if name:
            self.name = name

    name = "pipeline"

    @property
    def exact_hits(self) -> bool:  # type: ignore[override]
        """Whether :meth:`with_hits` is exact: it is when the last stage's is."""
        return self.stages[-1].exact_hits

    def children(self) -> list[Stage]:
        """The stages, in order."""
        return list(self.stages)

    def with_hits(self, k: int) -> Stage | None:
        """This pipeline with its last stage retrieving at most ``k`` hits (see :meth:`Stage.with_hits`)."""
        last = self.stages[-1].with_hits(k)
        if last is None:
            return None
        return Pipeline([*self.stages[:-1], last], name=self.name if self.name != Pipeline.name else None)

    def __repr__(self) -> str:
        return " >> ".join(repr(s) for s in self.stages)

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        for stage in self.stages:
            run = stage(queries, run)
        assert run is not None
        return run.with_name(self.name) if self.name != Pipeline.name else run

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters of every stage in the tree that keeps a ``stats`` mapping, by stage name.

        The walk follows :meth:`Stage.children` (nested pipelines, fusion inputs, ...);
        each stage object counts once, and stages sharing a name have their counters summed.
        """
        out: dict[str, dict[str, int]] = {}
        seen: set[int] = set()
        todo = list(reversed(self.children()))
        while todo:
            stage = todo.pop()
            if id(stage) in seen:
                continue
            seen.add(id(stage))
            counters = getattr(stage, "stats", None)
            if isinstance(counters, Mapping) and counters:
                merged = out.setdefault(stage.name, {})
                for key, value in counters.items():
                    merged[key] = merged.get(key, 0) + value
            todo.extend(reversed(stage.children()))
        return out

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], dataset: Any = None, **overrides: Any) -> Pipeline:
        """Build a pipeline from a YAML file in ``pipelines/``.

        ``dataset`` binds retrievers to a corpus. ``overrides`` (e.g.
        ``cache_dir=...``, ``show_progress=False``) are passed to every stage that
        accepts them. Any malformed content (unknown keys, wrong types or shapes, include
        cycles) raises :class:`ConfigError` naming the file and the key, e.g.
        ``pipelines/x.yaml: stages[2].bm25.k1``.
        """
        # imported here, not at the top: rankkit.pipeline_yaml imports this module
        from rankkit.pipeline_yaml import _pipeline_from_file

        return _pipeline_from_file(Path(path), dataset, overrides, ())


class Cutoff(Stage):
    """Keep the top ``k`` documents of each query."""

    def __init__(self, k: int, where: str = "cutoff") -> None:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ConfigError(f"{where} must be an integer >= 1 (documents kept per query), got {describe(k)}")
        self.k = int(k)
        self.name = f"top{self.k}"

    def __repr__(self) -> str:
        return f"Cutoff({self.k})"

    exact_hits = True

    def with_hits(self, k: int) -> Stage | None:
        """The tighter of the two cutoffs."""
        return self if self.k <= k else Cutoff(k)

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        if run is None:
            raise ConfigError("a cutoff needs an incoming run (put it after a retriever)")
        return run.top_k(self.k)


#: ranx fusion methods (``ranx.fuse(method=...)``).
FuseMethod = Literal["anz", "bayesfuse", "bordafuse", "condorcet", "gmnz", "isr", "log_isr", "logn_isr", "mapfuse",
                     "max", "med", "min", "mixed", "mnz", "posfuse", "probfuse", "rbc", "rrf", "segfuse", "slidefuse",
                     "sum", "w_bordafuse", "w_condorcet", "wmnz", "wsum"]
#: ranx score normalisations (``ranx.fuse(norm=...)``).
FuseNorm = Literal["min-max", "min_max", "min-max-inverted", "min_max_inverted", "max", "sum", "zmuv", "rank", "borda"]
_FUSE_METHODS: tuple[str, ...] = FuseMethod.__args__  # type: ignore[attr-defined]
_FUSE_NORMS: tuple[str, ...] = FuseNorm.__args__  # type: ignore[attr-defined]

@dataclass
class FuseConfig:
    """Options of :func:`fuse` (ranx.fuse): method, score normalisation and parameters.

    ``inputs`` (YAML only) lists at least two inputs, each a pipeline file, a stage
    mapping or a list of stages.
    """

    method: FuseMethod = "rrf"
    norm: FuseNorm | None = None
    params: dict[Annotated[str, Field(min_length=1)], Any] = field(default_factory=dict)
    inputs: list[Any] = field(default_factory=list)  # YAML only; at least two (checked by build_stages)
    name: StageName | None = None

    def __post_init__(self) -> None:
        validate_fields(self, "FuseConfig")  # built directly in Python: the checks of from_mapping


_RANK_METHODS = {"rrf", "rbc", "isr", "log_isr", "logn_isr", "bordafuse", "borda_fuse", "condorcet", "bayesfuse",
                 "posfuse", "probfuse", "segfuse", "slidefuse", "mapfuse", "w_bordafuse", "w_condorcet"}


class Fuse(Stage):
    """Fuse the runs of several stages with :func:`ranx.fuse` (RRF, CombSUM, weighted sum, ...).

    Each input stage receives the same incoming run. ``norm`` defaults to none for
    rank-based methods (RRF and friends) and ``"min-max"`` for score-based ones. The
    method, normalisation and parameters are checked here (``where`` prefixes errors),
    so a typo fails before any input runs.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        method: str = "rrf",
        norm: str | None = None,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        *,
        where: str = "fuse",
    ) -> None:
        if len(stages) < 2:
            raise ConfigError(f"{where}: fuse needs at least two input stages")
        for s in stages:
            if not isinstance(s, Stage):
                raise TypeError(f"{where}: fusion inputs must be Stage objects, got {type(s).__name__}")
        params = {} if params is None else params
        cfg = from_mapping(FuseConfig, {"method": method, "norm": norm, "params": params, "name": name}, where)
        # the checks of YAML fuse items; imported here, not at the top: rankkit.pipeline_yaml imports this module
        from rankkit.pipeline_yaml import _check_fuse

        _check_fuse(cfg.method, cfg.norm, cfg.params, len(stages), where)
        self.stages = list(stages)
        self.method = cfg.method
        self.norm = cfg.norm if cfg.norm is not None else (None if cfg.method in _RANK_METHODS else "min-max")
        self.params = dict(cfg.params)
        self.name = cfg.name or f"{cfg.method}({', '.join(s.name for s in self.stages)})"

    def __or__(self, other: Stage) -> Fuse:
        return Fuse([*self.stages, other], self.method, self.norm, self.params)

    def __repr__(self) -> str:
        return f"Fuse({self.stages!r}, method={self.method!r})"

    def children(self) -> list[Stage]:
        """The input stages."""
        return list(self.stages)

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        from rankkit.evaluate import (
            fuse_runs,  # ranx over compact keys: cost independent of id length
        )

        inputs = [stage(queries, run) for stage in self.stages]
        return fuse_runs(inputs, method=self.method, norm=self.norm, params=self.params or None, name=self.name)


def _push_cutoffs(stages: list[Stage]) -> list[Stage]:
    """Push each cutoff into the stage before it when that stage supports :meth:`Stage.with_hits`.

    The cutoff is kept after the pushed-down stage unless that stage is :attr:`~Stage.exact_hits`.
    """
    out: list[Stage] = []
    for stage in stages:
        if isinstance(stage, Cutoff) and out:
            pushed = out[-1].with_hits(stage.k)
            if pushed is not None:
                log.debug("pushed %r into %r", stage, out[-1])
                out[-1] = pushed
                if not pushed.exact_hits:
                    out.append(stage)
                continue
        out.append(stage)
    return out


def fuse(stages: Sequence[Stage], method: str = "rrf", norm: str | None = None, **params: Any) -> Fuse:
    """Fuse stages with ranx (``method``: rrf, sum, mnz, wsum, ...; ``params`` e.g. ``k=60``)."""
    return Fuse(stages, method=method, norm=norm, params=params)


# --- YAML stage registry ----------------------------------------------------------------

StageFactory = Callable[[Any, Any, dict[str, Any]], Stage]
_REGISTRY: dict[str, tuple[type, StageFactory]] = {}


def register_stage(name: str, config_cls: type) -> Callable[[StageFactory], StageFactory]:
    """Register a YAML stage type: ``factory(config, dataset, overrides) -> Stage``."""

    def deco(factory: StageFactory) -> StageFactory:
        _REGISTRY[name] = (config_cls, factory)
        return factory

    return deco


def stage_config(stage: Stage) -> dict[str, Any] | None:
    """The dataclass config of a stage as a dict, when it has one (for run cards)."""
    cfg = getattr(stage, "config", None)
    return to_mapping(cfg) if cfg is not None else None


#: names that moved to :mod:`rankkit.pipeline_yaml`, still importable from here
_MOVED_TO_PIPELINE_YAML = frozenset({"MAX_INCLUDE_DEPTH", "build_stages"})


def __getattr__(name: str) -> Any:
    """``build_stages`` and ``MAX_INCLUDE_DEPTH`` from :mod:`rankkit.pipeline_yaml` (imported on first use: no cycle)."""
    if name in _MOVED_TO_PIPELINE_YAML:
        from rankkit import pipeline_yaml

        return getattr(pipeline_yaml, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
