"""Stages and pipelines: composable retrieval as values (PyTerrier-style operators).

A *stage* maps ``(queries, run | None) -> Run``. Retrievers ignore the incoming run;
rerankers rescore it; cutoffs and fusions transform it. Stages compose with
``a >> b`` (then), ``a % k`` (keep top k) and :func:`fuse` (ranx fusion), and a
:class:`Pipeline` is itself a stage. Pipelines are built from YAML files
(:meth:`Pipeline.from_yaml`) through a registry of stage types, each with a dataclass
config, so an unknown option is an error naming the file and key.

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
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankkit.cache import RunCache
from rankkit.config import from_mapping, load_yaml, to_mapping
from rankkit.errors import ConfigError
from rankkit.types import Query, Run, as_queries

log = logging.getLogger(__name__)


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
        accepts them. Unknown keys raise :class:`ConfigError` naming the file and key.
        """
        path = Path(path)
        spec = load_yaml(path)
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: a pipeline file must be a mapping with a 'stages' list")
        for key in spec:
            if key not in {"name", "description", "stages"}:
                raise ConfigError(f"{path}: unknown top-level key {key!r}; allowed: name, description, stages")
        if "stages" not in spec:
            raise ConfigError(f"{path}: missing key 'stages'")
        stages = build_stages(spec["stages"], dataset, base=path.parent, where=f"{path}: stages", overrides=overrides)
        return cls(stages, name=str(spec.get("name") or path.stem))


class Cutoff(Stage):
    """Keep the top ``k`` documents of each query."""

    def __init__(self, k: int) -> None:
        if int(k) < 1:
            raise ConfigError(f"cutoff k must be >= 1, got {k}")
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


@dataclass
class FuseConfig:
    """Options of :func:`fuse` (ranx.fuse): method, score normalisation and parameters."""

    method: str = "rrf"
    norm: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[Any] = field(default_factory=list)
    name: str | None = None


_RANK_METHODS = {"rrf", "rbc", "isr", "log_isr", "logn_isr", "borda_fuse", "condorcet", "bayesfuse", "posfuse", "probfuse", "segfuse", "slidefuse", "mapfuse", "w_bordafuse", "w_condorcet"}


class Fuse(Stage):
    """Fuse the runs of several stages with :func:`ranx.fuse` (RRF, CombSUM, weighted sum, ...).

    Each input stage receives the same incoming run. ``norm`` defaults to none for
    rank-based methods (RRF and friends) and ``"min-max"`` for score-based ones.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        method: str = "rrf",
        norm: str | None = None,
        params: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if len(stages) < 2:
            raise ConfigError("fuse needs at least two input stages")
        self.stages = list(stages)
        self.method = method
        self.norm = norm if norm is not None else (None if method in _RANK_METHODS else "min-max")
        self.params = dict(params or {})
        self.name = name or f"{method}({', '.join(s.name for s in self.stages)})"

    def __or__(self, other: Stage) -> Fuse:
        return Fuse([*self.stages, other], self.method, self.norm, self.params)

    def __repr__(self) -> str:
        return f"Fuse({self.stages!r}, method={self.method!r})"

    def children(self) -> list[Stage]:
        """The input stages."""
        return list(self.stages)

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        import ranx

        runs = []
        for i, stage in enumerate(self.stages):
            r = stage(queries, run).to_ranx()
            r.name = f"in{i}"
            runs.append(r)
        fused = ranx.fuse(runs=runs, norm=self.norm, method=self.method, params=self.params or None)
        return Run.from_ranx(fused, name=self.name)


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


def _load_builtin_stages() -> None:
    # Importing these modules registers their stage types; done lazily (heavy deps).
    import rankkit.retrieve.bm25  # noqa: F401
    import rankkit.retrieve.dense  # noqa: F401
    import rankkit.rerank.cross_encoder  # noqa: F401
    import rankkit.rerank.setwise  # noqa: F401


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


def build_stages(
    items: Any, dataset: Any, base: Path, where: str, overrides: dict[str, Any] | None = None
) -> list[Stage]:
    """Turn a YAML ``stages`` list into stage objects (see :meth:`Pipeline.from_yaml`)."""
    _load_builtin_stages()
    overrides = overrides or {}
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: expected a non-empty list of stages")
    out: list[Stage] = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if isinstance(item, str):  # a bare reference to another pipeline file
            item = {"pipeline": item}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{here}: each stage is a mapping with exactly one key (its type)")
        (kind, values), = item.items()
        if kind == "pipeline":
            out.append(Pipeline.from_yaml(base / str(values), dataset, **overrides))
        elif kind == "cutoff":
            out.append(Cutoff(values))
        elif kind == "fuse":
            cfg = from_mapping(FuseConfig, values, f"{here}.fuse")
            inputs = [
                Pipeline(build_stages(inp, dataset, base, f"{here}.fuse.inputs[{j}]", overrides))
                for j, inp in enumerate(cfg.inputs)
            ]
            out.append(Fuse(inputs, cfg.method, cfg.norm, cfg.params, cfg.name))
        elif kind in _REGISTRY:
            config_cls, factory = _REGISTRY[kind]
            values = {k: _relative_to(base, v) for k, v in (values or {}).items()}
            cfg = from_mapping(config_cls, _apply_overrides(config_cls, values, overrides), f"{here}.{kind}")
            out.append(factory(cfg, dataset, overrides))
        else:
            known = ", ".join(sorted([*_REGISTRY, "pipeline", "cutoff", "fuse"]))
            raise ConfigError(f"{here}: unknown stage type {kind!r}; known types: {known}")
    return out


def stage_config(stage: Stage) -> dict[str, Any] | None:
    """The dataclass config of a stage as a dict, when it has one (for run cards)."""
    cfg = getattr(stage, "config", None)
    return to_mapping(cfg) if cfg is not None else None
