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
from rankkit.precision import check_precision
from rankkit.train.curriculum import CurriculumConfig
from rankkit.train.groups import GroupConfig
from rankkit.train.objectives import objective_spec

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


KINDS = ("cross_encoder", "bi_encoder")
POOLINGS = ("mean", "cls")


@dataclass
class ModelSettings:
    """Which scorer is trained, and on which backbone (``model:`` section; a bare string is ``name``).

    ``kind`` is ``cross_encoder`` (query and document read together, one score per pair) or
    ``bi_encoder`` (shared-weight query and document towers, score = similarity of the
    embeddings). ``name`` is any HF id or local path. ``init_from`` continues from a saved
    rankkit model folder of the same kind. Cross-encoders only: ``head`` is ``mean``/``cls``
    (new linear head on pooled states) or ``hf`` (the model's sequence-classification head).
    Bi-encoders only: ``pooling`` (``mean``, as all-MiniLM-L6-v2 was trained, or ``cls``),
    ``normalize`` (cosine similarity; else dot product), ``temperature`` (scores are
    ``similarity / temperature``) and ``learn_temperature``. An option of the other kind is
    an error, not silently ignored.
    """

    kind: str = "cross_encoder"
    name: str = MINILM_ID
    init_from: str | None = None
    max_length: int = 192
    head: str | None = None
    pooling: str | None = None
    normalize: bool | None = None
    temperature: float | None = None
    learn_temperature: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 8:
            raise ValueError(f"max_length must be an integer >= 8, got {self.max_length!r}")
        ce_only, be_only = ("head",), ("pooling", "normalize", "temperature", "learn_temperature")
        other = be_only if self.kind == "cross_encoder" else ce_only
        for key in other:
            if getattr(self, key) is not None:
                raise ValueError(f"{key} does not apply to kind {self.kind}; "
                                 f"it is a {'bi' if self.kind == 'cross_encoder' else 'cross'}-encoder option")
        if self.kind == "cross_encoder":
            self.head = self.head or "mean"
            if self.head not in ("mean", "cls", "hf"):
                raise ValueError(f"head must be mean, cls or hf, got {self.head!r}")
            return
        self.pooling = self.pooling or "mean"
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        self.normalize = True if self.normalize is None else self.normalize
        self.temperature = 0.05 if self.temperature is None else self.temperature
        self.learn_temperature = bool(self.learn_temperature)
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not self.temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {self.temperature!r}")


@dataclass
class TrainConfig:
    """All options of reranker training (see the module docstring for the defaults' origin).

    ``model`` picks the scorer (:class:`ModelSettings`); ``objective`` is a name or a
    mapping ``{name: ..., <setting>: ...}`` (see :mod:`rankkit.train.objectives`).
    ``eval_every`` is in optimiser steps (null: end of each epoch; 0: never).
    ``save_every`` writes a resumable checkpoint. ``precision`` is ``auto`` (bf16
    autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16`` or ``fp16`` (autocast; measure
    on the CPU at hand before choosing bf16 there).
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    output: str = "models/ce-scifact"
    data: DataSettings = field(default_factory=DataSettings)
    objective: Any = "softmax"
    lora: LoraSettings = field(default_factory=LoraSettings)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
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
    precision: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            self.model = ModelSettings(name=self.model)
        self.objective = objective_spec(self.objective)
        if self.epochs < 1 or self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("epochs, batch_size and gradient_accumulation_steps must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 (or null)")
        check_precision(self.precision)
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
