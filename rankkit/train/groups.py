"""Training groups for rerankers: one positive plus sampled negatives per (query, relevant doc).

Positives come from the qrels (grade >= ``min_relevance``). Hard negatives are
sampled from the first-stage run's top ``negatives_depth`` (documents not judged
relevant), uniformly (``sampling="uniform"``) or best-ranked first (``"top"``);
``random_negatives`` of them are drawn from the whole corpus instead. A query
whose run has too few candidates is topped up with random corpus documents, so
every group has exactly ``group_size`` documents. Sampling is deterministic given
``(seed, epoch)``; each epoch draws fresh negatives. :func:`holdout` carves dev
queries out of a training split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

import numpy as np
from pydantic import Field

from rankkit.config import NonNegativeInt, PositiveInt, validate_fields

from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError, DatasetError
from rankkit.types import Run, TrainingGroup

log = logging.getLogger(__name__)

Sampling = Literal["uniform", "top"]
SAMPLING = get_args(Sampling)


@dataclass(slots=True)
class GroupConfig:
    """How training groups are built (see the module docstring).

    ``group_size`` (>= 2) counts the positive; ``negatives_depth`` (>= 1) is how deep
    into the first-stage run negatives are drawn; ``random_negatives`` is in
    [0, group_size); ``min_relevance`` (>= 1) is the lowest qrels grade that counts as
    relevant; ``on_missing_positive`` is ``"error"`` (a training query without any
    relevant document is a data problem) or ``"skip"``.
    """

    group_size: Annotated[int, Field(ge=2)] = 8
    negatives_depth: PositiveInt = 30
    sampling: Sampling = "uniform"
    random_negatives: NonNegativeInt = 0
    min_relevance: PositiveInt = 1
    on_missing_positive: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        validate_fields(self, "groups")
        if not self.random_negatives < self.group_size:
            raise ValueError(f"random_negatives must be in [0, group_size), got {self.random_negatives}")


def build_groups(dataset: Dataset, run: Run, config: GroupConfig | None = None, *, seed: int = 0,
                 epoch: int = 0, difficulty: Callable[[str, str], float] | None = None) -> list[TrainingGroup]:
    """Build one :class:`TrainingGroup` per (query, relevant document) of ``dataset``.

    ``run`` is the first-stage run over the dataset's queries; ``difficulty(qid, docid)``
    (e.g. a :class:`rankkit.train.curriculum.Difficulty`) fills each group's
    ``difficulty``. Raises :class:`ConfigError` when the dataset has no qrels and
    :class:`DatasetError` for a query without a positive (unless ``on_missing_positive:
    skip``).
    """
    cfg = config or GroupConfig()
    if dataset.qrels.num_judgements == 0:
        raise ConfigError(f"dataset {dataset.name!r} has no qrels: training a reranker needs relevance labels "
                          "(give a split with qrels, e.g. beir/scifact/train)")
    rng = np.random.default_rng([seed, epoch])
    corpus: list[str] | None = None
    plan: list[tuple[str, str, float, list[str]]] = []
    n_neg = cfg.group_size - 1
    topped_up = 0
    for query in sorted(dataset.queries, key=lambda q: q.qid):
        judged = dataset.qrels.get(query.qid, {})
        positives = sorted(d for d, g in judged.items() if g >= cfg.min_relevance)
        if not positives:
            if cfg.on_missing_positive == "skip":
                log.info("query %s has no relevant document; skipped", query.qid)
                continue
            raise DatasetError(f"dataset {dataset.name!r}: training query {query.qid!r} has no relevant document "
                               f"(grade >= {cfg.min_relevance}) in the qrels; fix the qrels or set "
                               "groups.on_missing_positive: skip")
        relevant = set(positives)
        ranked = [d for d, _ in run.ranked(query.qid)[:cfg.negatives_depth]] if query.qid in run else []
        pool = [d for d in ranked if d not in relevant]
        for pos in positives:
            k = min(n_neg - cfg.random_negatives, len(pool))
            if cfg.sampling == "top":
                hard = pool[:k]
            else:
                hard = [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))] if k else []
            need = n_neg - len(hard)
            extra: list[str] = []
            if need:
                if corpus is None:
                    corpus = [d.docid for d in dataset.docs_iter()]
                taken = relevant | set(hard)
                if len(corpus) - len(taken & set(corpus)) < need:
                    raise DatasetError(f"dataset {dataset.name!r}: corpus too small for groups of {cfg.group_size}")
                while len(extra) < need:
                    d = corpus[int(rng.integers(len(corpus)))]
                    if d not in taken:
                        taken.add(d)
                        extra.append(d)
                topped_up += need - (cfg.random_negatives if len(hard) == n_neg - cfg.random_negatives else 0)
            plan.append((query.qid, pos, float(judged[pos]), hard + extra))
    if not plan:
        raise DatasetError(f"dataset {dataset.name!r}: no training groups (no query has a relevant document)")
    if topped_up:
        log.info("%d negatives drawn at random from the corpus (runs too short for the group size)", topped_up)
    docs = dataset.docs(list(dict.fromkeys(d for _, pos, _, negs in plan for d in (pos, *negs))))
    queries = {q.qid: q for q in dataset.queries}
    groups = []
    for qid, pos, grade, negs in plan:
        ids = [pos, *negs]
        diff = tuple(float(difficulty(qid, d)) for d in ids) if difficulty is not None else ()
        groups.append(TrainingGroup(queries[qid], [docs[d] for d in ids], [grade] + [0.0] * len(negs),
                                    difficulty=diff))
    return groups


def holdout(dataset: Dataset, size: float | int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split ``dataset`` into (train, dev) by query: ``size`` is a fraction (< 1) or a count of dev queries.

    Only judged queries go to dev; the choice is deterministic given ``seed``.
    """
    judged = sorted(q.qid for q in dataset.queries if q.qid in dataset.qrels)
    n = int(round(size * len(judged))) if isinstance(size, float) and size < 1 else int(size)
    if not 0 < n < len(judged):
        raise ConfigError(f"dev split of {size} queries is impossible with {len(judged)} judged training queries")
    rng = np.random.default_rng(seed)
    dev = set(rng.choice(judged, size=n, replace=False).tolist())
    train = dataset.subset(qids=[q.qid for q in dataset.queries if q.qid not in dev])
    return train, dataset.subset(qids=sorted(dev))
