"""Configs of LLM reranker training: `rankkit train grpo` (Rank-R1) and `rankkit train sft-setwise`.

Every trl hyperparameter that matters is a field here with an explicit value, since
trl's defaults drift between versions (the KL weight ``beta`` went from 0.04 to 0).
Defaults are the CPU-scale recipe of METHODS.md section 2e (small sets, G=4, short
completions); the paper's values are in the comments of ``pipelines/rank_r1_grpo.yaml``.
YAML keys map 1:1 onto these dataclasses (read with :func:`rankkit.train.config.load_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from rankkit.config import (Device, NonEmptyStr, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                            Precision, Seed, check_file, validate_fields)
from rankkit.precision import check_precision
from rankkit.train.config import LoraSettings

#: learning-rate schedules of transformers that need no extra arguments
Scheduler = Literal["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
                    "inverse_sqrt"]


def _llm_lora() -> LoraSettings:
    return LoraSettings(rank=16, alpha=32.0, dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class SetwiseDataSettings:
    """Where setwise training prompts come from (see :func:`rankkit.train.setwise_data.build_setwise_examples`).

    ``first_stage`` is a pipeline YAML or TREC run (relative to the config file);
    ``set_size`` (>= 2) documents per prompt, negatives from the first stage's top
    ``negatives_depth``; ``num_prompts`` caps the prompts (a seeded sample; null: all);
    ``max_prompt_tokens`` is checked on every rendered prompt (an error names the longest one).
    """

    dataset: NonEmptyStr = "beir/scifact/train"
    split: NonEmptyStr | None = None
    first_stage: NonEmptyStr = "bm25.yaml"
    set_size: Annotated[int, Field(ge=2)] = 4
    negatives_depth: PositiveInt = 30
    num_prompts: PositiveInt | None = None
    passage_tokens: PositiveInt | None = 64
    query_tokens: PositiveInt | None = 48
    max_prompt_tokens: PositiveInt = 512

    def __post_init__(self) -> None:
        validate_fields(self, "data")


@dataclass
class RewardSettings:
    """GRPO reward: Rank-R1's binary correctness reward plus an optional format term.

    ``format_weight`` 0 is the paper (format is only a precondition). A positive
    weight adds ``format_weight * partial_format`` (0.5 for a closed think block at
    the start, 0.5 more for an answer block after it), an opt-in shaping for models
    too weak ever to produce the format by chance.
    """

    format_weight: NonNegativeFloat = 0.0

    def __post_init__(self) -> None:
        validate_fields(self, "reward")


@dataclass
class GRPOSettings:
    """trl ``GRPOConfig`` values, all explicit (see the module docstring).

    ``per_device_train_batch_size`` counts completions (prompts per step times
    ``num_generations``); ``max_time_s`` stops training at the first step boundary
    after that many seconds (a CPU budget; null: no limit). ``top_k`` 0 disables top-k
    filtering; ``top_p`` is in (0, 1].
    """

    learning_rate: PositiveFloat = 1e-4
    beta: NonNegativeFloat = 0.04
    num_generations: Annotated[int, Field(ge=2)] = 4
    temperature: PositiveFloat = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    top_k: NonNegativeInt = 0
    max_completion_length: PositiveInt = 128
    per_device_train_batch_size: PositiveInt = 8
    gradient_accumulation_steps: PositiveInt = 1
    num_iterations: PositiveInt = 1
    epsilon: PositiveFloat = 0.2
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = "grpo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    mask_truncated_completions: bool = False
    max_steps: PositiveInt = 100
    max_time_s: PositiveFloat | None = None
    warmup_steps: NonNegativeInt = 0
    lr_scheduler_type: Scheduler = "constant"
    weight_decay: NonNegativeFloat = 0.0
    max_grad_norm: PositiveFloat = 1.0
    logging_steps: PositiveInt = 1
    save_steps: PositiveInt = 25

    def __post_init__(self) -> None:
        validate_fields(self, "grpo")
        if self.per_device_train_batch_size % self.num_generations:
            raise ValueError(f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple "
                             f"of num_generations ({self.num_generations})")


@dataclass
class SFTSettings:
    """trl ``SFTConfig`` values of the Setwise-SFT baseline (loss on the completion only).

    ``max_steps`` -1 trains ``num_train_epochs`` epochs (> 0, fractions allowed); a count >= 1 overrides it.
    """

    learning_rate: PositiveFloat = 1e-4
    per_device_train_batch_size: PositiveInt = 4
    gradient_accumulation_steps: PositiveInt = 1
    num_train_epochs: PositiveFloat = 1.0
    max_steps: Annotated[Literal[-1] | PositiveInt,
                         Field(description="-1 (train num_train_epochs) or a step count >= 1")] = -1
    max_length: PositiveInt = 640
    warmup_steps: NonNegativeInt = 0
    lr_scheduler_type: Scheduler = "constant"
    weight_decay: NonNegativeFloat = 0.0
    max_grad_norm: PositiveFloat = 1.0
    logging_steps: PositiveInt = 5

    def __post_init__(self) -> None:
        validate_fields(self, "sft")


@dataclass
class LLMTrainingConfig:
    """Fields shared by GRPO and SFT configs (subclasses set their own defaults).

    ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) is the mixed precision of
    training (trl's ``bf16``/``fp16`` flags; ``auto``: bf16 on CUDA, none on the CPU,
    see :func:`rankkit.precision.mixed_precision`); the weights stay fp32. LLM rerankers
    always train a LoRA adapter, so ``lora.enabled: false`` is refused.
    """

    model: NonEmptyStr = "smollm2"
    template: NonEmptyStr = "setwise-r1"
    prefix: str | None = None
    output: NonEmptyStr = "models/setwise-llm"
    data: SetwiseDataSettings = field(default_factory=SetwiseDataSettings)
    lora: LoraSettings = field(default_factory=_llm_lora)
    seed: Seed = 42
    device: Device = "auto"
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        validate_fields(self, type(self).__name__)
        check_precision(self.precision)
        if not self.lora.enabled:
            raise ValueError("lora.enabled: false is not supported for LLM rerankers (they train a LoRA adapter)")

    def check_paths(self, base: Path) -> None:
        """Refuse a first-stage file that does not exist (relative paths resolve against ``base``)."""
        check_file("data.first_stage", self.data.first_stage, base)


@dataclass
class RankR1Config(LLMTrainingConfig):
    """`rankkit train grpo`: Rank-R1 GRPO training of a LoRA adapter on setwise prompts.

    ``template`` is a built-in name or ``.toml`` path; ``prefix`` replaces the
    template's assistant prefix; ``output`` is relative to the config file.
    """

    output: NonEmptyStr = "models/rank-r1"
    reward: RewardSettings = field(default_factory=RewardSettings)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)


@dataclass
class SetwiseSFTConfig(LLMTrainingConfig):
    """`rankkit train sft-setwise`: the Setwise-SFT baseline (answers without reasoning), same LoRA."""

    template: NonEmptyStr = "setwise"
    output: NonEmptyStr = "models/setwise-sft"
    sft: SFTSettings = field(default_factory=SFTSettings)
