"""The one config of `rankkit train reranker`: every knob, mirrored 1:1 by YAML.

Defaults follow the recipe measured on SciFact (ANCHORS.md, probe 2): a mean-pooled
all-MiniLM-L6-v2 with a new linear head, LoRA on query/key/value/dense, listwise
softmax over groups of 8 (negatives from the first stage's top 30), 4 groups per
step, 2 epochs, max length 192, adapter lr 5e-4, head lr 1e-3, 30 warm-up steps,
gradient clipping at 1.0.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from rankkit.config import load_config  # re-exported: training YAMLs are read with it
from rankkit.config import (Device, NonEmptyStr, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                            Precision, Probability, Seed, check_file, validate_fields)
from rankkit.models import MINILM_ID
from rankkit.precision import check_precision
from rankkit.rerank.tsprank import TSPHeadSettings
from rankkit.robust.perturb import PerturbConfig
from rankkit.train.curriculum import CurriculumConfig
from rankkit.train.groups import GroupConfig
from rankkit.train.objectives import objective_spec

_NUMBER = re.compile(r"^\s*[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


@dataclass(slots=True)
class LoraSettings:
    """LoRA adapter settings (peft); ``enabled: false`` means full fine-tuning.

    ``rank`` >= 1, ``alpha`` > 0, ``dropout`` in [0, 1), ``target_modules`` a non-empty
    list of module names. ``lora: false`` (or ``true``) is short for ``lora: {enabled: false}``.
    """

    enabled: bool = True
    rank: PositiveInt = 16
    alpha: PositiveFloat = 32.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: Annotated[list[NonEmptyStr], Field(min_length=1)] = field(
        default_factory=lambda: ["query", "key", "value", "dense"])

    __config_shorthand__ = "enabled"

    def __post_init__(self) -> None:
        validate_fields(self, "lora")


Dev = Annotated[Annotated[float, Field(gt=0, lt=1)] | PositiveInt | NonEmptyStr | None,
                Field(description="a fraction in (0, 1), a query count >= 1, a dataset id or path, or null")]


@dataclass(slots=True)
class DataSettings:
    """Training data: a dataset split with qrels, its first stage, and the dev queries.

    ``dataset`` is an ir_datasets id or a BEIR folder (``split`` picks the folder's
    split). Loose TREC/JSONL files instead: ``queries``, ``corpus`` and ``qrels`` (then
    ``dataset`` is only a name). ``first_stage`` is a pipeline YAML or a TREC run file (relative paths resolve
    against the config file). ``dev`` is a fraction in (0, 1) or a count (>= 1) of training queries held
    out for model selection and the interpolation weight, a dataset id/path of a
    separate dev split, or null (no dev evaluation). ``dev_first_stage`` is the dev queries'
    first stage (default: ``first_stage``), e.g. BM25 when ``first_stage`` is a file of mined
    negatives. ``dev_depth`` candidates per dev query are reranked.
    """

    dataset: NonEmptyStr = "beir/scifact/train"
    split: NonEmptyStr | None = None
    queries: NonEmptyStr | None = None
    corpus: NonEmptyStr | None = None
    qrels: NonEmptyStr | None = None
    first_stage: NonEmptyStr = "bm25.yaml"
    dev: Dev = 0.1
    dev_first_stage: NonEmptyStr | None = None
    dev_depth: PositiveInt = 100
    groups: GroupConfig = field(default_factory=GroupConfig)

    def __post_init__(self) -> None:
        validate_fields(self, "data")
        if isinstance(self.dev, str) and _NUMBER.match(self.dev):
            raise ValueError(f"dev {self.dev!r} is a string, not a number (YAML reads 1e-1 as text: write 0.1 "
                             "or 1.0e-1), and no dataset is named like a number")


@dataclass(slots=True)
class NoiseSettings:
    """Noisy training (CertDR's data augmentation): train on randomly substituted documents.

    Each epoch, a ``fraction`` of the training documents is replaced by one sample of the
    random substitution distribution of :mod:`rankkit.robust.perturb` (seeded by the run's
    seed and the epoch, so a resumed run sees the same documents). The sets come from
    ``table`` (a file written by ``PerturbationTable.save``, e.g. by ``rankkit certify``; relative
    to the config file) or are built from the training corpus with ``perturbation``.
    """

    perturbation: PerturbConfig = field(default_factory=PerturbConfig)
    table: NonEmptyStr | None = None
    fraction: Probability = 1.0

    def __post_init__(self) -> None:
        validate_fields(self, "noise")


Kind = Literal["cross_encoder", "bi_encoder", "tsprank"]
KINDS = get_args(Kind)
Pooling = Literal["mean", "cls"]
POOLINGS = get_args(Pooling)


@dataclass(slots=True)
class ModelSettings:
    """Which scorer is trained, and on which backbone (``model:`` section; a bare string is ``name``).

    ``kind`` is ``cross_encoder`` (query and document read together, one score per pair) or
    ``bi_encoder`` (shared-weight query and document towers, score = similarity of the
    embeddings). ``name`` is any HF id or local path. ``init_from`` continues from a saved
    rankkit model folder of the same kind. ``max_length`` (>= 8) caps the tokens per input.
    Cross-encoders only: ``head`` is ``mean``/``cls``
    (new linear head on pooled states) or ``hf`` (the model's sequence-classification head).
    Bi-encoders only: ``pooling`` (``mean``, as all-MiniLM-L6-v2 was trained, or ``cls``),
    ``normalize`` (cosine similarity; else dot product), ``temperature`` (> 0; scores are
    ``similarity / temperature``) and ``learn_temperature``. ``tsprank`` (TSPRank's pairwise
    head over frozen embeddings of the ``name`` encoder, :mod:`rankkit.rerank.tsprank`) takes
    ``tsp``, the head's settings (:class:`~rankkit.rerank.tsprank.TSPHeadSettings`). An option
    of another kind is an error, not silently ignored.
    """

    kind: Kind = "cross_encoder"
    name: NonEmptyStr = MINILM_ID
    init_from: NonEmptyStr | None = None
    max_length: Annotated[int, Field(ge=8)] = 192
    head: Literal["mean", "cls", "hf"] | None = None
    pooling: Pooling | None = None
    normalize: bool | None = None
    temperature: PositiveFloat | None = None
    learn_temperature: bool | None = None
    tsp: TSPHeadSettings | None = None

    __config_shorthand__ = "name"

    def __post_init__(self) -> None:
        validate_fields(self, "model")
        owner = {"head": "cross_encoder", "pooling": "bi_encoder", "normalize": "bi_encoder",
                 "temperature": "bi_encoder", "learn_temperature": "bi_encoder", "tsp": "tsprank"}
        for key, kind in owner.items():
            if getattr(self, key) is not None and kind != self.kind:
                raise ValueError(f"{key} does not apply to kind {self.kind}; it is a {kind} option")
        if self.kind == "tsprank":
            tsp = self.tsp or TSPHeadSettings()
            for key, mine in (("encoder", self.name), ("max_length", self.max_length)):
                default = getattr(TSPHeadSettings(), key)
                if getattr(tsp, key) not in (default, mine):
                    raise ValueError(f"tsp.{key} repeats model.{'name' if key == 'encoder' else key}: "
                                     f"set model.{'name' if key == 'encoder' else key} only")
            self.tsp = dataclasses.replace(tsp, encoder=self.name, max_length=self.max_length)
            return
        if self.kind == "cross_encoder":
            self.head = self.head or "mean"
            return
        self.pooling = self.pooling or "mean"
        self.normalize = True if self.normalize is None else self.normalize
        self.temperature = 0.05 if self.temperature is None else self.temperature
        self.learn_temperature = bool(self.learn_temperature)


def _check_metric(name: str) -> None:
    """Refuse a ``select_metric`` that ranx does not know (a cheap name check; ranx is not imported)."""
    import importlib

    known = getattr(importlib.import_module("rankkit.evaluate"), "_RANX_METRICS", None)
    match = re.fullmatch(r"([a-z_\-]+)(@\d+)?", name)
    if known and (match is None or match.group(1) not in known):
        raise ValueError(f"select_metric {name!r} is not a metric: use ranx's names with an optional @cutoff "
                         f"(e.g. ndcg@10, recall@100, mrr@10); supported: {', '.join(known)}")


@dataclass(slots=True)
class TrainConfig:
    """All options of reranker training (see the module docstring for the defaults' origin).

    ``model`` picks the scorer (:class:`ModelSettings`); ``objective`` is a name or a
    mapping ``{name: ..., <setting>: ...}`` (see :mod:`rankkit.train.objectives`).
    ``noise`` (:class:`NoiseSettings`) trains on randomly substituted documents (CertDR).
    ``eval_every`` is in optimiser steps (null: end of each epoch; 0: never).
    ``save_every`` writes a resumable checkpoint. ``forward_chunk`` (pairs per forward
    pass, null: the whole batch at once) scores a batch chunk by chunk without gradients,
    takes the objective's gradient with respect to the scores, then re-runs each chunk
    with gradients (gradient caching: Gao, Zhang, Han and Callan, 2021, "Scaling Deep
    Contrastive Learning Batch Size under Memory Limited Setup"), so memory stays flat in
    the group size (groups of 100 for policy gradient); objectives that read in-batch
    scores cannot use it. ``precision`` is ``auto`` (bf16
    autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16`` or ``fp16`` (autocast; measure
    on the CPU at hand before choosing bf16 there). ``device`` is ``auto``, ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps``. Counts are integers >= 1 (``warmup_steps`` >= 0),
    ``lr``, ``head_lr`` and ``max_grad_norm`` are > 0, ``weight_decay`` >= 0; every value
    is checked when the config is read (:func:`rankkit.config.from_mapping`).
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    output: NonEmptyStr = "models/ce-scifact"
    data: DataSettings = field(default_factory=DataSettings)
    objective: Any = "softmax"
    lora: LoraSettings = field(default_factory=LoraSettings)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    noise: NoiseSettings | None = None
    epochs: PositiveInt = 2
    max_steps: PositiveInt | None = None
    batch_size: PositiveInt = 4
    gradient_accumulation_steps: PositiveInt = 1
    lr: PositiveFloat = 5e-4
    head_lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    warmup_steps: NonNegativeInt = 30
    max_grad_norm: PositiveFloat = 1.0
    eval_every: NonNegativeInt | None = None
    eval_batch_size: PositiveInt = 64
    forward_chunk: PositiveInt | None = None
    select_metric: NonEmptyStr = "ndcg@10"
    tune_interpolation: bool = True
    save_every: PositiveInt = 50
    keep_checkpoints: PositiveInt = 2
    log_every: PositiveInt = 10
    seed: Seed = 42
    device: Device = "auto"
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            self.model = ModelSettings(name=self.model)
        validate_fields(self, type(self).__name__)
        self.objective = objective_spec(self.objective)
        check_precision(self.precision)
        if self.forward_chunk is not None and self.objective["name"] == "infonce" \
                and self.objective.get("in_batch", True):
            raise ValueError("forward_chunk does not apply to objective infonce with in-batch negatives (they need "
                             "every document of the batch at once); set forward_chunk: null or in_batch: false")
        _check_metric(self.select_metric)
        self._check_tsprank()

    def _check_tsprank(self) -> None:
        """TSPRank's constraints: pairwise objectives need its pairwise head, and it trains on candidate lists."""
        from rankkit.train.objectives import OBJECTIVES

        matrix = OBJECTIVES[self.objective["name"]].matrix
        if self.model.kind != "tsprank":
            if matrix:
                raise ValueError(f"objective {self.objective['name']} scores pairwise matrices: it needs "
                                 "model.kind: tsprank")
            return
        assert self.model.tsp is not None
        if matrix and not self.model.tsp.pairwise:
            raise ValueError(f"objective {self.objective['name']} needs a pairwise head; model.tsp.head is pointwise")
        if not matrix and self.model.tsp.pairwise:
            raise ValueError(f"model.tsp.head {self.model.tsp.head} scores pairs: use objective tsp_local, "
                             "tsp_margin or tsp_hybrid (or head: pointwise for softmax, ranknet, ...)")
        if self.data.groups.mode != "candidates":
            raise ValueError("model.kind tsprank trains on whole candidate lists: set data.groups.mode: candidates")
        if self.lora.enabled:
            raise ValueError("lora does not apply to model.kind tsprank (its encoder is frozen): set lora: false")
        if self.forward_chunk is not None:
            raise ValueError("forward_chunk does not apply to model.kind tsprank (the head scores a list at once)")

    def check_paths(self, base: Path) -> None:
        """Refuse first-stage and loose data files that do not exist (relative paths resolve against ``base``).

        A cheap check made when the YAML is read, so a typo fails before any dataset loads.
        """
        d = self.data
        for key in ("first_stage", "dev_first_stage", "queries", "corpus", "qrels"):
            check_file(f"data.{key}", getattr(d, key), base)
        if self.noise is not None:
            check_file("noise.table", self.noise.table, base)


def load_train_config(path: str | Path, overrides: dict[str, object] | None = None) -> tuple[TrainConfig, Path]:
    """Read a cross-encoder training YAML (see :func:`load_config`)."""
    return load_config(TrainConfig, path, overrides)
