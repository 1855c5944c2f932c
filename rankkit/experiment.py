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
from typing import Any

from rankkit.config import from_mapping, load_yaml
from rankkit.errors import ConfigError
from rankkit.evaluate import DEFAULT_METRICS, Comparison, compare, evaluate
from rankkit.runcard import run_card, write_json
from rankkit.types import Run

log = logging.getLogger(__name__)


@dataclass
class ExperimentConfig:
    """An experiment: which pipelines run on which dataset and how they are compared."""

    dataset: str
    pipelines: dict[str, str]
    split: str | None = None
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    baseline: str | None = None
    stat_test: str = "student"
    correction: str = "holm"
    alpha: float = 0.05
    seed: int = 42
    num_queries: int | None = None
    output: str | None = None
    runs_dir: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.pipelines:
            raise ValueError("'pipelines' must name at least one pipeline file")


@dataclass
class ExperimentResult:
    """Runs, their comparison, per-pipeline wall times and the JSON report written."""

    runs: dict[str, Run]
    comparison: Comparison | None
    means: dict[str, dict[str, float]]
    wall_times: dict[str, float]
    report: dict[str, Any]


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read an experiment YAML; unknown keys raise :class:`ConfigError` naming the file and key."""
    spec = load_yaml(path)
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: an experiment file must be a mapping")
    return from_mapping(ExperimentConfig, spec, str(path))


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
    for name, rel in config.pipelines.items():
        path = base / rel
        pipeline = Pipeline.from_yaml(path, dataset, **overrides)
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
    """One expected result: a pipeline on a dataset, expected metric values and tolerances."""

    dataset: str
    pipeline: str
    expected: dict[str, float]
    tolerance: dict[str, float] = field(default_factory=dict)
    split: str | None = None
    name: str | None = None
    source: str = ""


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
    unknown = set(spec) - {"rows", "description"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: rows, description")
    results = []
    for i, raw in enumerate(spec["rows"]):
        row = from_mapping(MatrixRow, raw, f"{path}: rows[{i}]")
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
