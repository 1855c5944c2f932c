"""Loading what reranker training needs (dataset, first-stage runs, dev split, groups) and batching it.

:func:`load_training_data` turns a :class:`TrainConfig` into a :class:`TrainingData`:
the training split, its first-stage run (a pipeline YAML run over the split's
queries, or a TREC run file), the dev queries (carved from the training queries,
or a separate split) with their first-stage run, and one list of groups per epoch
(fresh negatives each epoch). Scorers tokenise batches of groups (:mod:`rankkit.train.scorers`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError
from rankkit.train.groups import build_groups, holdout
from rankkit.types import Document, Run, TrainingGroup

if TYPE_CHECKING:
    from rankkit.robust.perturb import Substituter
    from rankkit.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Groups per epoch, the first-stage run they came from, and the dev queries with their run."""

    groups: list[list[TrainingGroup]]
    run: Run
    dev: Dataset | None = None
    dev_run: Run | None = None

    def with_difficulty(self, difficulty: Callable[[str, str], float]) -> TrainingData:
        """The same groups with ``difficulty(qid, docid)`` filled in (curriculum learning)."""
        groups = [[dataclasses.replace(g, difficulty=tuple(float(difficulty(g.query.qid, d.docid)) for d in g.docs))
                   for g in epoch] for epoch in self.groups]
        return dataclasses.replace(self, groups=groups)


def first_stage_run(spec: str, dataset: Dataset, base: Path, show_progress: bool = True) -> Run:
    """Run the first stage ``spec`` (a pipeline YAML, or a TREC run file) over ``dataset``'s queries."""
    path = Path(spec) if Path(spec).is_absolute() else base / spec
    if path.suffix in (".yaml", ".yml"):
        from rankkit.pipeline import Pipeline

        return Pipeline.from_yaml(path, dataset, show_progress=show_progress)(dataset.queries)
    if not path.is_file():
        raise ConfigError(f"first stage {spec!r}: {path} is neither a pipeline YAML nor an existing run file")
    return Run.from_trec(path)


def load_training_data(cfg: TrainConfig, base: Path, show_progress: bool = True) -> TrainingData:
    """Load the training split, first stage, dev split and per-epoch groups named by ``cfg``."""
    from rankkit.data import load_dataset

    d = cfg.data
    if d.queries or d.corpus or d.qrels:
        if not d.qrels:
            raise ConfigError("data.qrels is missing: training a reranker needs relevance labels "
                              "(data.queries and data.corpus are given, but no qrels file)")
        if not (d.queries and d.corpus):
            raise ConfigError("data.queries, data.corpus and data.qrels go together (loose files)")
        files = {k: str(p if Path(p).is_absolute() else base / p) for k, p in
                 (("queries", d.queries), ("corpus", d.corpus), ("qrels", d.qrels))}
        dataset = load_dataset(d.dataset, **files)
    else:
        dataset = load_dataset(d.dataset, d.split)
    if dataset.qrels.num_judgements == 0:
        raise ConfigError(f"data.dataset {d.dataset!r} has no qrels: training a reranker needs relevance labels "
                          "(give a split with qrels, e.g. beir/scifact/train)")
    run = first_stage_run(d.first_stage, dataset, base, show_progress)
    dev = dev_run = None
    if isinstance(d.dev, (int, float)) and not isinstance(d.dev, bool):
        dataset, dev = holdout(dataset, d.dev, cfg.seed)
        dev_run = first_stage_run(d.dev_first_stage, dev, base, show_progress) if d.dev_first_stage else run
    elif isinstance(d.dev, str):
        dev = load_dataset(d.dev)
        dev_run = first_stage_run(d.dev_first_stage or d.first_stage, dev, base, show_progress)
    groups = build_epochs(dataset, run, cfg)
    if cfg.noise is not None:
        substituter = noise_substituter(cfg, dataset, base)
        groups = [add_noise(g, substituter, cfg.noise.fraction, cfg.seed, e) for e, g in enumerate(groups)]
    log.info("%d training groups per epoch from %d queries%s", len(groups[0]), len(dataset.queries),
             f"; {len(dev.queries)} dev queries" if dev is not None else "")
    return TrainingData(groups, run, dev, dev_run)


def build_epochs(dataset: Dataset, run: Run, cfg: TrainConfig) -> list[list[TrainingGroup]]:
    """One group list per epoch, each with its own negatives (seeded by ``(seed, epoch)``)."""
    return [build_groups(dataset, run, cfg.data.groups, seed=cfg.seed, epoch=e) for e in range(cfg.epochs)]


def noise_substituter(cfg: TrainConfig, dataset: Dataset, base: Path) -> Substituter:
    """The random substitution sampler of ``cfg.noise``: its table file, or one built from ``dataset``'s corpus."""
    from rankkit.robust.perturb import PerturbationTable, Substituter, build_table

    assert cfg.noise is not None
    if cfg.noise.table:
        path = Path(cfg.noise.table) if Path(cfg.noise.table).is_absolute() else base / cfg.noise.table
        table = PerturbationTable.load(path)
    else:
        table = build_table((d.contents for d in dataset.docs_iter()), cfg.noise.perturbation)
    return Substituter(table, seed=cfg.seed)


def add_noise(groups: list[TrainingGroup], substituter: Substituter, fraction: float, seed: int,
              epoch: int) -> list[TrainingGroup]:
    """``groups`` with a ``fraction`` of their documents replaced by one random substitution each.

    Sample ``epoch`` of each document's title and text is used, so every epoch sees fresh noise
    and the result depends only on ``(seed, epoch)`` (exact resume).
    """
    rng = np.random.default_rng([seed, epoch, 11])
    out = []
    changed = total = 0
    for g in groups:
        docs = []
        for d in g.docs:
            total += 1
            if rng.random() < fraction:
                changed += 1
                title = substituter.sample(d.title, 1, start=epoch)[0] if d.title else d.title
                d = Document(d.docid, substituter.sample(d.text, 1, start=epoch)[0], title)
            docs.append(d)
        out.append(dataclasses.replace(g, docs=tuple(docs)))
    log.info("noisy training, epoch %d: %d of %d documents randomly substituted", epoch, changed, total)
    return out
