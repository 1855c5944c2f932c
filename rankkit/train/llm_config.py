"""Configs of LLM reranker training: `rankkit train grpo` (Rank-R1) and `rankkit train sft-setwise`.

Every trl hyperparameter that matters is a field here with an explicit value, since
trl's defaults drift between versions (the KL weight ``beta`` went from 0.04 to 0).
Defaults are the CPU-scale recipe of METHODS.md section 2e (small sets, G=4, short
completions); the paper's values are in the comments of ``pipelines/rank_r1_grpo.yaml``.
YAML keys map 1:1 onto these dataclasses (read with :func:`rankkit.train.config.load_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rankkit.precision import check_precision
from rankkit.train.config import LoraSettings


def _llm_lora() -> LoraSettings:
    return LoraSettings(rank=16, alpha=32.0, dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class SetwiseDataSettings:
    """Where setwise training prompts come from (see :func:`rankkit.train.setwise_data.build_setwise_examples`).

    ``first_stage`` is a pipeline YAML or TREC run (relative to the config file);
    ``num_prompts`` caps the prompts (a seeded sample; null: all); ``max_prompt_tokens``
    is checked on every rendered prompt (an error names the longest one).
    """

    dataset: str = "beir/scifact/train"
    split: str | None = None
    first_stage: str = "bm25.yaml"
    set_size: int = 4
    negatives_depth: int = 30
    num_prompts: int | None = None
    passage_tokens: int | None = 64
    query_tokens: int | None = 48
    max_prompt_tokens: int = 512


@dataclass
class RewardSettings:
    """GRPO reward: Rank-R1's binary correctness reward plus an optional format term.

    ``format_weight`` 0 is the paper (format is only a precondition). A positive
    weight adds ``format_weight * partial_format`` (0.5 for a closed think block at
    the start, 0.5 more for an answer block after it), an opt-in shaping for models
    too weak ever to produce the format by chance.
    """

    format_weight: float = 0.0


@dataclass
class GRPOSettings:
    """trl ``GRPOConfig`` values, all explicit (see the module docstring).

    ``per_device_train_batch_size`` counts completions (prompts per step times
    ``num_generations``); ``max_time_s`` stops training at the first step boundary
    after that many seconds (a CPU budget; null: no limit).
    """

    learning_rate: float = 1e-4
    beta: float = 0.04
    num_generations: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_completion_length: int = 128
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    num_iterations: int = 1
    epsilon: float = 0.2
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    mask_truncated_completions: bool = False
    max_steps: int = 100
    max_time_s: float | None = None
    warmup_steps: int = 0
    lr_scheduler_type: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    save_steps: int = 25

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2 (GRPO compares completions of the same prompt)")
        if self.per_device_train_batch_size % self.num_generations:
            raise ValueError(f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple "
                             f"of num_generations ({self.num_generations})")


@dataclass
class SFTSettings:
    """trl ``SFTConfig`` values of the Setwise-SFT baseline (loss on the completion only)."""

    learning_rate: float = 1e-4
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 1.0
    max_steps: int = -1
    max_length: int = 640
    warmup_steps: int = 0
    lr_scheduler_type: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 5


@dataclass
class LLMTrainingConfig:
    """Fields shared by GRPO and SFT configs (subclasses set their own defaults).

    ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) is the mixed precision of
    training (trl's ``bf16``/``fp16`` flags; ``auto``: bf16 on CUDA, none on the CPU,
    see :func:`rankkit.precision.mixed_precision`); the weights stay fp32.
    """

    model: str = "smollm2"
    template: str = "setwise-r1"
    prefix: str | None = None
    output: str = "models/setwise-llm"
    data: SetwiseDataSettings = field(default_factory=SetwiseDataSettings)
    lora: LoraSettings = field(default_factory=_llm_lora)
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_precision(self.precision)


@dataclass
class RankR1Config(LLMTrainingConfig):
    """`rankkit train grpo`: Rank-R1 GRPO training of a LoRA adapter on setwise prompts.

    ``template`` is a built-in name or ``.toml`` path; ``prefix`` replaces the
    template's assistant prefix; ``output`` is relative to the config file.
    """

    output: str = "models/rank-r1"
    reward: RewardSettings = field(default_factory=RewardSettings)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)


@dataclass
class SetwiseSFTConfig(LLMTrainingConfig):
    """`rankkit train sft-setwise`: the Setwise-SFT baseline (answers without reasoning), same LoRA."""

    template: str = "setwise"
    output: str = "models/setwise-sft"
    sft: SFTSettings = field(default_factory=SFTSettings)
