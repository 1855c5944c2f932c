"""Training groups for rerankers: one positive plus sampled negatives per (query, relevant doc).

Positives come from the qrels (grade >= ``min_relevance``). Hard negatives are
sampled from the first-stage run's top ``negatives_depth`` (documents not judged
relevant), uniformly (``sampling="uniform"``) or best-ranked first (``"top"``);
``random_negatives`` of them are drawn from the whole corpus instead. A query
whose run has too few candidates is topped up with random corpus documents, so
every group has exactly ``group_size`` documents. Sampling is deterministic given
``(seed, epoch)``; each epoch draws fresh negatives. :func:`holdout` carves dev
queries out of a training split.

``mode: candidates`` builds one group per query instead (Plackett-Luce policy gradient,
listwise objectives that should see what the reranker will see): the first stage's top
``group_size`` documents with their graded labels, every judged positive kept (a positive
ranked below the cut replaces the lowest-ranked non-relevant candidate), topped up with
random corpus documents when the run is shorter. Its groups carry the run's scores
(``TrainingGroup.scores``; documents the run lacks score below its minimum).
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
    relevant document is a data problem) or ``"skip"``. ``mode`` is ``positive`` (one
    group per relevant document) or ``candidates`` (one group per query: the first stage's
    top ``group_size``, positives kept; ``negatives_depth``, ``sampling`` and
    ``random_negatives`` do not apply). ``outside_positives`` (candidates only): ``insert``
    the positives ranked below the cut in place of the lowest non-relevant candidates, or
    ``drop`` them, so a group is exactly the list a reranker of the top ``group_size`` sees
    (a query without a positive there is skipped); ``drop`` suits models that read the
    first stage's scores or ranks as features (TSPRank), where an inserted positive would
    be a tell-tale low-scored item.
    """

    group_size: Annotated[int, Field(ge=2)] = 8
    negatives_depth: PositiveInt = 30
    sampling: Sampling = "uniform"
    random_negatives: NonNegativeInt = 0
    min_relevance: PositiveInt = 1
    on_missing_positive: Literal["error", "skip"] = "error"
    mode: Literal["positive", "candidates"] = "positive"
    outside_positives: Literal["insert", "drop"] = "insert"

    def __post_init__(self) -> None:
        validate_fields(self, "groups")
        if not self.random_negatives < self.group_size:
            raise ValueError(f"random_negatives must be in [0, group_size), got {self.random_negatives}")
        if self.mode != "candidates" and self.outside_positives != "insert":
            raise ValueError("outside_positives applies to mode: candidates only")
        if self.mode == "candidates" and self.random_negatives:
            raise ValueError("random_negatives does not apply to mode: candidates (the group is the first stage's "
                             "top group_size); set it to 0")


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
    if cfg.mode == "candidates":
        return _candidate_groups(dataset, run, cfg, seed, epoch, difficulty)
    rng = np.random.default_rng([seed, epoch])
    corpus = _Corpus(dataset, cfg.group_size)
    plan: list[tuple[str, str, float, list[str]]] = []
    n_neg = cfg.group_size - 1
    topped_up = 0
    for query in sorted(dataset.queries, key=lambda q: q.qid):
        judged = dataset.qrels.get(query.qid, {})
        positives = _positives(dataset, query.qid, judged, cfg)
        if not positives:
            continue
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
                extra = corpus.draw(relevant | set(hard), need, rng)
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


class _Corpus:
    """The corpus's docids, read once on first use, to draw random documents from."""

    def __init__(self, dataset: Dataset, group_size: int) -> None:
        self.dataset, self.group_size = dataset, group_size
        self.ids: list[str] | None = None
        self.known: set[str] = set()

    def draw(self, taken: set[str], need: int, rng: np.random.Generator) -> list[str]:
        """``need`` distinct random docids not in ``taken`` (which grows with them)."""
        if self.ids is None:
            self.ids = [d.docid for d in self.dataset.docs_iter()]
            self.known = set(self.ids)
        if len(self.known) - len(taken & self.known) < need:
            raise DatasetError(f"dataset {self.dataset.name!r}: corpus too small for groups of {self.group_size}")
        out: list[str] = []
        while len(out) < need:
            d = self.ids[int(rng.integers(len(self.ids)))]
            if d not in taken:
                taken.add(d)
                out.append(d)
        return out


def _positives(dataset: Dataset, qid: str, judged: dict[str, int], cfg: GroupConfig) -> list[str]:
    """The query's relevant documents, sorted; empty (logged) for a query to skip, else a :class:`DatasetError`."""
    positives = sorted(d for d, g in judged.items() if g >= cfg.min_relevance)
    if positives or cfg.on_missing_positive == "skip":
        if not positives:
            log.info("query %s has no relevant document; skipped", qid)
        return positives
    raise DatasetError(f"dataset {dataset.name!r}: training query {qid!r} has no relevant document "
                       f"(grade >= {cfg.min_relevance}) in the qrels; fix the qrels or set "
                       "groups.on_missing_positive: skip")


def _candidate_groups(dataset: Dataset, run: Run, cfg: GroupConfig, seed: int, epoch: int,
                      difficulty: Callable[[str, str], float] | None) -> list[TrainingGroup]:
    """``mode: candidates``: one group per query, the first stage's top ``group_size`` with every positive kept."""
    rng = np.random.default_rng([seed, epoch])
    corpus = _Corpus(dataset, cfg.group_size)
    plan: list[tuple[str, list[str], list[float]]] = []
    size = cfg.group_size
    skipped = 0
    for query in sorted(dataset.queries, key=lambda q: q.qid):
        judged = dataset.qrels.get(query.qid, {})
        positives = _positives(dataset, query.qid, judged, cfg)
        if not positives:
            continue
        ranked = [d for d, _ in run.ranked(query.qid)] if query.qid in run else []
        if not ranked:
            raise DatasetError(f"dataset {dataset.name!r}: training query {query.qid!r} has no first-stage "
                               "candidates (it is missing from the run); a candidate-set group needs them")
        if len(positives) > size:
            raise DatasetError(f"dataset {dataset.name!r}: query {query.qid!r} has {len(positives)} relevant "
                               f"documents, more than groups.group_size ({size})")
        ids = ranked[:size]
        in_top = set(ids)
        missing = [d for d in positives if d not in in_top]
        if missing and cfg.outside_positives == "drop":
            if len(missing) == len(positives):
                skipped += 1
                continue
            missing = []
        if missing:  # replace the lowest-ranked non-relevant candidates by the positives below the cut
            keep = set(positives)
            lowest = [i for i in range(len(ids) - 1, -1, -1) if ids[i] not in keep]
            drop = set(lowest[:max(0, len(ids) + len(missing) - size)])
            ids = [d for i, d in enumerate(ids) if i not in drop] + missing
        if len(ids) < size:
            ids += corpus.draw(set(ids), size - len(ids), rng)
        grades = [float(judged.get(d, 0)) if judged.get(d, 0) >= cfg.min_relevance else 0.0 for d in ids]
        plan.append((query.qid, ids, grades))
    if skipped:
        log.info("%d queries without a relevant document in the first stage's top %d skipped "
                 "(groups.outside_positives: drop)", skipped, size)
    if not plan:
        raise DatasetError(f"dataset {dataset.name!r}: no training groups (no query has a relevant document)")
    docs = dataset.docs(list(dict.fromkeys(d for _, ids, _ in plan for d in ids)))
    queries = {q.qid: q for q in dataset.queries}
    return [TrainingGroup(queries[qid], [docs[d] for d in ids], grades,
                          difficulty=tuple(float(difficulty(qid, d)) for d in ids) if difficulty is not None else (),
                          scores=_first_stage_scores(run, qid, ids))
            for qid, ids, grades in plan]


def _first_stage_scores(run: Run, qid: str, ids: list[str]) -> tuple[float, ...]:
    """The run's scores of ``ids``; a document the run lacks (a positive or a random one) scores below its minimum."""
    scores = dict(run[qid]) if qid in run else {}
    floor = min(scores.values(), default=0.0) - 1.0
    return tuple(float(scores.get(d, floor)) for d in ids)


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
