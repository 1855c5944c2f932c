"""Experiments and the reproduction matrix: configs plus one command each.

An *experiment* runs several pipeline YAMLs on one dataset, compares them with
paired significance tests against a baseline and writes a JSON report with a run
card. The *reproduction matrix* (in the spirit of Pyserini's 2CR) lists expected
figures with tolerances and fails when a measured figure drifts outside them.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from rankkit.config import (
    NonNegativeFloat,
    PositiveInt,
    Seed,
    from_mapping,
    validate_fields,
)
from rankkit.errors import ConfigError
from rankkit.evaluate import DEFAULT_METRICS, Comparison, compare, evaluate
from rankkit.pipeline import PathStr, StageName, describe, short_repr
from rankkit.pipeline_yaml import check_pipeline_file
from rankkit.runcard import run_card, write_json
from rankkit.types import Run
from rankkit.yaml_io import load_yaml

log = logging.getLogger(__name__)


#: A metric name such as ``ndcg@10`` (checked against ranx when evaluating).
MetricName = Annotated[str, Field(min_length=1, max_length=100)]
#: A finite number (an expected metric value).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


@dataclass
class ExperimentConfig:
    """An experiment: which pipelines run on which dataset and how they are compared.

    ``pipelines`` maps run names (1 to 200 characters) to pipeline YAML files (relative to
    the experiment file); ``baseline`` is one of those names; ``alpha`` is in (0, 1).
    """

    dataset: PathStr
    pipelines: Annotated[dict[StageName, PathStr], Field(min_length=1)]
    split: StageName | None = None
    metrics: Annotated[list[MetricName], Field(min_length=1)] = field(default_factory=lambda: list(DEFAULT_METRICS))
    baseline: StageName | None = None
    stat_test: Literal["student", "fisher", "tukey"] = "student"
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    alpha: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.05
    seed: Seed = 42
    num_queries: PositiveInt | None = None
    output: PathStr | None = None
    runs_dir: PathStr | None = None
    description: str = ""

    def __post_init__(self) -> None:
        validate_fields(self, "ExperimentConfig")  # a config built directly in Python gets the same checks
        if not self.pipelines:
            raise ValueError("'pipelines' must name at least one pipeline file")
        for name in self.pipelines:
            if self.runs_dir is not None and (name in (".", "..") or "/" in name or "\\" in name):
                raise ValueError(f"pipelines: run name {short_repr(name)} cannot name a file in runs_dir "
                                 "(no '/', '\\', '.' or '..')")
        if self.baseline is not None and self.baseline not in self.pipelines:
            raise ValueError(f"baseline {short_repr(self.baseline)} is not one of the pipelines "
                             f"({', '.join(map(short_repr, self.pipelines))})")


@dataclass
class ExperimentResult:
    """Runs, their comparison, per-pipeline wall times and the JSON report written."""

    runs: dict[str, Run]
    comparison: Comparison | None
    means: dict[str, dict[str, float]]
    wall_times: dict[str, float]
    report: dict[str, Any]


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read an experiment YAML; unknown keys, bad values and missing pipeline files raise
    :class:`ConfigError` naming the file and key (pipeline files resolve against the YAML's folder).
    """
    spec = load_yaml(path)
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: an experiment file must be a mapping, got {describe(spec)}")
    config = from_mapping(ExperimentConfig, spec, str(path))
    for name, rel in config.pipelines.items():
        check_pipeline_file(Path(path).parent / rel, f"{path}: pipelines.{name}")
    return config


def run_experiment(
    config: ExperimentConfig, base_dir: str | os.PathLike[str] = ".", show_progress: bool = True,
    cache_dir: str | None = None,
) -> ExperimentResult:
    """Run every pipeline of ``config``, compare them and write the report (when ``output`` is set).

    Relative paths in the config resolve against ``base_dir`` (the YAML's folder).
    Stage outputs are cached under ``cache_dir`` so pipelines sharing a prefix (e.g.
    BM25 and BM25 >> dense) compute it once.
    """
    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline
    from rankkit.runcard import seed_everything

    seed_everything(config.seed)
    base = Path(base_dir)
    t_start = time.perf_counter()
    dataset = load_dataset(config.dataset, split=config.split)
    if config.num_queries:
        dataset = dataset.subset(config.num_queries)
    runs: dict[str, Run] = {}
    wall: dict[str, float] = {}
    stage_stats: dict[str, dict[str, dict[str, int]]] = {}
    overrides: dict[str, Any] = {"show_progress": show_progress}
    if cache_dir:
        overrides["cache_dir"] = cache_dir
    # Build every pipeline before running any, so a bad file fails before hours of compute.
    pipelines = {name: Pipeline.from_yaml(base / rel, dataset, **overrides) for name, rel in config.pipelines.items()}
    for name, rel in config.pipelines.items():
        path = base / rel
        pipeline = pipelines.pop(name)  # dropped after its run (its models are freed)
        log.info("running %s (%s) on %s", name, path, dataset.name)
        t0 = time.perf_counter()
        runs[name] = pipeline(dataset.queries).with_name(name)
        wall[name] = time.perf_counter() - t0
        if pipeline.stats():
            stage_stats[name] = pipeline.stats()
        if config.runs_dir:
            runs[name].to_trec(base / config.runs_dir / f"{name}.trec", tag=name.replace(" ", "_"))
    comparison = None
    if len(runs) > 1:
        comparison = compare(list(runs.values()), dataset.qrels, config.metrics, baseline=config.baseline,
                             stat_test=config.stat_test, correction=config.correction, alpha=config.alpha,
                             seed=config.seed)
        means = comparison.means
    else:
        (name, run), = runs.items()
        means = {name: evaluate(run, dataset.qrels, config.metrics)}
    report = {
        "dataset": dataset.name,
        "num_queries": len(dataset.queries),
        "results": means,
        "comparison": comparison.to_dict() if comparison else None,
        "pipeline_wall_time_s": {k: round(v, 3) for k, v in wall.items()},
        "stage_stats": stage_stats,
        "run_card": run_card(config=vars(config), seed=config.seed, wall_time_s=time.perf_counter() - t_start),
    }
    if config.output:
        write_json(report, base / config.output)
    return ExperimentResult(runs, comparison, means, wall, report)


@dataclass
class MatrixRow:
    """One expected result: a pipeline on a dataset, expected metric values and tolerances.

    ``expected`` maps at least one metric to a finite value; ``tolerance`` maps some of those
    metrics to finite numbers >= 0 (default 0.001).
    """

    dataset: PathStr
    pipeline: PathStr
    expected: Annotated[dict[MetricName, FiniteFloat], Field(min_length=1)]
    tolerance: dict[MetricName, NonNegativeFloat] = field(default_factory=dict)
    split: StageName | None = None
    name: StageName | None = None
    source: str = ""

    def __post_init__(self) -> None:
        validate_fields(self, "MatrixRow")  # types first: the check below relies on them
        extra = [m for m in self.tolerance if m not in self.expected]
        if extra:
            raise ValueError(f"tolerance: {short_repr(extra[0])} is not one of the expected metrics "
                             f"({', '.join(map(short_repr, self.expected))})")


def check_matrix(path: str | os.PathLike[str], show_progress: bool = True,
                 only: str | None = None) -> list[dict[str, Any]]:
    """Run every row of a reproduction matrix YAML and return one result dict per (row, metric).

    Each result has ``expected``, ``measured``, ``tolerance`` and ``ok``. The default
    tolerance is 0.001. ``only`` keeps rows whose name contains that text.
    """
    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline

    path = Path(path)
    spec = load_yaml(path)
    if not isinstance(spec, dict) or "rows" not in spec:
        raise ConfigError(f"{path}: a reproduction matrix is a mapping with a 'rows' list")
    unknown = [k for k in spec if k not in ("rows", "description")]
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(short_repr(k) for k in unknown[:5])}; "
                          "allowed: rows, description")
    if not isinstance(spec["rows"], list) or not spec["rows"]:
        raise ConfigError(f"{path}: rows must be a non-empty list of rows, got {describe(spec['rows'])}")
    rows = []  # every row is checked before any runs
    for i, raw in enumerate(spec["rows"]):
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: rows[{i}] must be a mapping (dataset, pipeline, expected, ...), "
                              f"got {describe(raw)}")
        row = from_mapping(MatrixRow, raw, f"{path}: rows[{i}]")
        check_pipeline_file(path.parent / row.pipeline, f"{path}: rows[{i}].pipeline")
        rows.append(row)
    results = []
    for row in rows:
        name = row.name or f"{Path(row.pipeline).stem} on {row.dataset}"
        if only and only not in name:
            continue
        dataset = load_dataset(row.dataset, split=row.split)
        run = Pipeline.from_yaml(path.parent / row.pipeline, dataset, show_progress=show_progress)(dataset.queries)
        measured = evaluate(run, dataset.qrels, list(row.expected))
        for metric, expected in row.expected.items():
            tol = row.tolerance.get(metric, 0.001)
            results.append({"name": name, "metric": metric, "expected": expected, "measured": measured[metric],
                            "tolerance": tol, "ok": abs(measured[metric] - expected) <= tol, "source": row.source})
    return results
