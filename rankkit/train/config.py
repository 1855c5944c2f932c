"""The one config of `rankkit train reranker`: every knob, mirrored 1:1 by YAML.

Defaults follow the recipe measured on SciFact (ANCHORS.md, probe 2): a mean-pooled
all-MiniLM-L6-v2 with a new linear head, LoRA on query/key/value/dense, listwise
softmax over groups of 8 (negatives from the first stage's top 30), 4 groups per
step, 2 epochs, max length 192, adapter lr 5e-4, head lr 1e-3, 30 warm-up steps,
gradient clipping at 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rankkit.config import from_mapping, load_yaml
from rankkit.models import MINILM_ID
from rankkit.train.curriculum import CurriculumConfig
from rankkit.train.groups import GroupConfig
from rankkit.train.objectives import canonical_objective

T = TypeVar("T")


@dataclass
class LoraSettings:
    """LoRA adapter settings (peft); ``enabled: false`` means full fine-tuning."""

    enabled: bool = True
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class DataSettings:
    """Training data: a dataset split with qrels, its first stage, and the dev queries.

    ``dataset`` is an ir_datasets id or a BEIR folder (``split`` picks the folder's
    split). Loose TREC/JSONL files instead: ``queries``, ``corpus`` and ``qrels`` (then
    ``dataset`` is only a name). ``first_stage`` is a pipeline YAML or a TREC run file (relative paths resolve
    against the config file). ``dev`` is a fraction or count of training queries held
    out for model selection and the interpolation weight, a dataset id/path of a
    separate dev split, or null (no dev evaluation). ``dev_depth`` candidates per dev
    query are reranked.
    """

    dataset: str = "beir/scifact/train"
    split: str | None = None
    queries: str | None = None
    corpus: str | None = None
    qrels: str | None = None
    first_stage: str = "bm25.yaml"
    dev: float | int | str | None = 0.1
    dev_first_stage: str | None = None
    dev_depth: int = 100
    groups: GroupConfig = field(default_factory=GroupConfig)


@dataclass
class TrainConfig:
    """All options of reranker training (see the module docstring for the defaults' origin).

    ``head`` is ``mean``/``cls`` (new linear head on pooled states) or ``hf`` (the
    model's sequence-classification head); ``init_from`` continues from a saved
    rankkit model folder. ``eval_every`` is in optimiser steps (null: end of each
    epoch; 0: never). ``save_every`` writes a resumable checkpoint. ``mixed_precision``
    is ``auto`` (bf16 on CUDA, none on CPU), ``no``, ``bf16`` or ``fp16``.
    """

    model: str = MINILM_ID
    head: str = "mean"
    init_from: str | None = None
    output: str = "models/ce-scifact"
    data: DataSettings = field(default_factory=DataSettings)
    objective: str = "softmax"
    lora: LoraSettings = field(default_factory=LoraSettings)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    max_length: int = 192
    epochs: int = 2
    max_steps: int | None = None
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    lr: float = 5e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    max_grad_norm: float = 1.0
    eval_every: int | None = None
    eval_batch_size: int = 64
    select_metric: str = "ndcg@10"
    tune_interpolation: bool = True
    save_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 42
    device: str = "auto"
    mixed_precision: str = "auto"

    def __post_init__(self) -> None:
        self.objective = canonical_objective(self.objective)
        if self.head not in ("mean", "cls", "hf"):
            raise ValueError(f"head must be mean, cls or hf, got {self.head!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("epochs, batch_size and gradient_accumulation_steps must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 (or null)")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.save_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("save_every and keep_checkpoints must be >= 1")


def load_config(cls: type[T], path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[T, Path]:
    """Read a training YAML into dataclass ``cls`` with dotted ``overrides`` (``{"lora.rank": 8}``).

    Returns (config, the YAML's folder); errors name the file and the dotted key.
    """
    path = Path(path)
    values = load_yaml(path) or {}
    if not isinstance(values, dict):
        from rankkit.errors import ConfigError

        raise ConfigError(f"{path}: expected a mapping of training options")
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return from_mapping(cls, values, str(path)), path.parent


def load_train_config(path: str | Path, overrides: dict[str, object] | None = None) -> tuple[TrainConfig, Path]:
    """Read a cross-encoder training YAML (see :func:`load_config`)."""
    return load_config(TrainConfig, path, overrides)
