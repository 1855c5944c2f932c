"""Configs of ``rankkit certify`` and ``rankkit attack`` (YAML keys map 1:1 onto these dataclasses).

Relative paths resolve against the YAML file's folder. Both jobs take their candidate lists from
a pipeline (``pipeline``): all its stages but the last produce the candidates (the top
``depth`` per query), and the last stage is the ranker that is certified or attacked (a
cross-encoder, a dense stage, or BM25 on its own, which then also gives the candidates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from rankkit.config import NonEmptyStr, PositiveInt, Seed, check_file, from_mapping, validate_fields
from rankkit.errors import ConfigError
from rankkit.robust.attack import AttackConfig
from rankkit.robust.certify import DEFAULT_KS, Rule, check_samples
from rankkit.robust.perturb import PerturbConfig

Alpha = Annotated[float, Field(gt=0, lt=1)]


def _check_samples(key: str, n: int, alpha: float) -> None:
    try:
        check_samples(n, alpha)
    except ConfigError as e:
        raise ValueError(f"{key}: {e}") from None


@dataclass(slots=True)
class SetsSettings:
    """Where the perturbation sets come from: a ``table`` file, or built from the corpus with ``perturbation``."""

    perturbation: PerturbConfig = field(default_factory=PerturbConfig)
    table: NonEmptyStr | None = None

    def __post_init__(self) -> None:
        validate_fields(self, "sets")


@dataclass(slots=True)
class CertifyConfig:
    """``rankkit certify``: CRQ@K of a smoothed ranker for each N in ``samples``.

    ``queries`` takes the first queries by id (null: all); ``depth`` candidates per query are
    smoothed and certified; ``ks`` (default: 1..10, 20, 30, 50 below ``depth``) must each be
    below ``depth``; ``alpha`` is the Hoeffding confidence; ``rule`` the certification
    condition (:mod:`rankkit.robust.certify`); ``max_words`` cuts documents to their first words;
    ``attack`` runs the soundness check (a greedy attack on the document at rank K + 1 of each
    query at ``attack_k``, crafted against the base ranker and judged by the smoothed one).
    ``cache_dir`` holds the pair scores (default: ``<output>/cache``), so reruns and other N reuse them.
    """

    dataset: NonEmptyStr = "beir/scifact/test"
    split: NonEmptyStr | None = None
    pipeline: NonEmptyStr = "ce_certify.yaml"
    output: NonEmptyStr = "results/certify-scifact"
    queries: PositiveInt | None = 50
    depth: PositiveInt = 20
    samples: Annotated[list[PositiveInt], Field(min_length=1)] = field(default_factory=lambda: [100, 1000])
    alpha: Alpha = 0.05
    ks: list[PositiveInt] | None = None
    rule: Rule = "per_document"
    max_words: PositiveInt | None = None
    sets: SetsSettings = field(default_factory=SetsSettings)
    attack: AttackConfig | None = field(default_factory=AttackConfig)
    attack_k: PositiveInt = 10
    batch_size: PositiveInt = 64
    cache_dir: NonEmptyStr | None = None
    seed: Seed = 0

    def __post_init__(self) -> None:
        validate_fields(self, "CertifyConfig")
        for n in self.samples:
            _check_samples("samples", n, self.alpha)
        too_deep = [k for k in self.cutoffs if k >= self.depth]
        if too_deep:
            raise ValueError(f"ks: K = {too_deep[0]} is not below depth {self.depth} (certifying the top K needs "
                             "candidates ranked below K); raise depth or drop it")
        if self.attack is not None and self.attack_k >= self.depth:
            raise ValueError(f"attack_k {self.attack_k} must be below depth {self.depth}")

    @property
    def cutoffs(self) -> list[int]:
        """The K values reported (the paper's list cut at ``depth`` when ``ks`` is not given)."""
        return sorted(set(self.ks)) if self.ks is not None else [k for k in DEFAULT_KS if k < self.depth]

    def check_paths(self, base: Path) -> None:
        """Refuse a missing pipeline or table file before any work."""
        check_file("pipeline", self.pipeline, base)
        check_file("sets.table", self.sets.table, base)


@dataclass(slots=True)
class RankerSpec:
    """One ranker of the robustness report: a ``pipeline`` whose last stage ranks, optionally
    ``smoothed`` with N = ``samples`` (then it is attacked through its base ranker, see ``attack``)."""

    pipeline: NonEmptyStr = "bm25.yaml"
    smoothed: bool = False
    samples: PositiveInt = 100

    def __post_init__(self) -> None:
        validate_fields(self, "rankers")


@dataclass(slots=True)
class AttackJobConfig:
    """``rankkit attack``: the robustness report ("Are neural ranking models robust?" view).

    Every ranker in ``rankers`` reranks the same candidates (the top ``depth`` of ``candidates``,
    a pipeline); the document at ``target_rank`` is attacked to enter the top ``k`` under the same
    budget (``attack``). A smoothed ranker is attacked with substitutions chosen on its base
    ranker and judged by the smoothed scores (``adaptive: true`` chooses them on the smoothed
    scores, at N times the cost), and each of its queries is also certified at ``k``.
    """

    dataset: NonEmptyStr = "beir/scifact/test"
    split: NonEmptyStr | None = None
    candidates: NonEmptyStr = "bm25.yaml"
    rankers: dict[NonEmptyStr, Any] = field(default_factory=lambda: {"bm25": RankerSpec()})
    output: NonEmptyStr = "results/attack-scifact"
    queries: PositiveInt | None = 50
    depth: PositiveInt = 20
    k: PositiveInt = 10
    target_rank: PositiveInt = 11
    attack: AttackConfig = field(default_factory=AttackConfig)
    adaptive: bool = False
    alpha: Alpha = 0.05
    max_words: PositiveInt | None = None
    sets: SetsSettings = field(default_factory=SetsSettings)
    batch_size: PositiveInt = 64
    cache_dir: NonEmptyStr | None = None
    seed: Seed = 0

    def __post_init__(self) -> None:
        validate_fields(self, "AttackJobConfig")
        if not self.rankers:
            raise ValueError("rankers: give at least one ranker")
        for name, spec in list(self.rankers.items()):
            if not isinstance(spec, RankerSpec):
                if not isinstance(spec, dict):
                    raise ValueError(f"rankers.{name} must be a mapping such as {{pipeline: bm25.yaml}}, "
                                     f"got {spec!r}")
                try:
                    self.rankers[name] = from_mapping(RankerSpec, spec, f"rankers.{name}")
                except ConfigError as e:
                    raise ValueError(str(e)) from None
        if not self.k < self.target_rank <= self.depth:
            raise ValueError(f"target_rank must be below the top k and within depth: k {self.k} < target_rank "
                             f"{self.target_rank} <= depth {self.depth}")
        for name, spec in self.rankers.items():
            if spec.smoothed:
                _check_samples(f"rankers.{name}.samples", spec.samples, self.alpha)

    def check_paths(self, base: Path) -> None:
        """Refuse missing pipeline or table files before any work."""
        check_file("candidates", self.candidates, base)
        for name, spec in self.rankers.items():
            check_file(f"rankers.{name}.pipeline", spec.pipeline, base)
        check_file("sets.table", self.sets.table, base)
