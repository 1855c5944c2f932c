"""Rank-R1: GRPO training of a setwise LLM reranker with trl's ``GRPOTrainer`` and a LoRA adapter.

:func:`train_grpo` builds setwise prompts (one relevant document among
``set_size``, shuffled; the ground truth kept as ``"[i]"``), then runs
``trl.GRPOTrainer`` with every hyperparameter from :class:`RankR1Config` and two
reward functions: ``correct`` (Rank-R1's binary reward, weight 1) and ``format``
(the partial format score, weight ``reward.format_weight``; 0 reproduces the
paper and still logs format compliance). trl logs both per step
(``rewards/correct/mean``, ``rewards/format/mean``); the log is saved with the adapter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankkit.models import resolve_device
from rankkit.rerank.setwise_parse import partial_format, rank_r1_reward
from rankkit.train.llm_config import RankR1Config
from rankkit.train.setwise_common import (finish, output_folder, peft_lora, prepare_examples,
                                          resolve_template, time_budget_callback)

log = logging.getLogger(__name__)


class SetwiseReward:
    """A trl reward function over completions (strings) with the template's prefix put back in front.

    ``kind="correct"`` is :func:`rank_r1_reward` against the ``label`` column;
    ``kind="format"`` is :func:`partial_format`. ``__name__`` is what trl logs it as.
    """

    def __init__(self, kind: str, prefix: str = "") -> None:
        if kind not in ("correct", "format"):
            raise ValueError(f"kind must be correct or format, got {kind!r}")
        self.kind = kind
        self.prefix = prefix
        self.__name__ = kind

    def __call__(self, completions: list[Any], label: list[str] | None = None, **kwargs: Any) -> list[float]:
        texts = [self.prefix + (c if isinstance(c, str) else c[-1]["content"]) for c in completions]
        if self.kind == "format":
            return [partial_format(t) for t in texts]
        if label is None:
            raise ValueError("the correctness reward needs the dataset's 'label' column")
        return [rank_r1_reward(t, gt) for t, gt in zip(texts, label)]


def grpo_args(cfg: RankR1Config, output_dir: str) -> Any:
    """The ``trl.GRPOConfig`` of ``cfg``: every setting explicit, logging each step, no external reporting."""
    from trl import GRPOConfig

    g = cfg.grpo
    return GRPOConfig(
        output_dir=output_dir, learning_rate=g.learning_rate, beta=g.beta, num_generations=g.num_generations,
        temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, max_completion_length=g.max_completion_length,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps, num_iterations=g.num_iterations,
        epsilon=g.epsilon, loss_type=g.loss_type, scale_rewards=g.scale_rewards,
        mask_truncated_completions=g.mask_truncated_completions, max_steps=g.max_steps,
        warmup_steps=g.warmup_steps, lr_scheduler_type=g.lr_scheduler_type, weight_decay=g.weight_decay,
        max_grad_norm=g.max_grad_norm, logging_steps=g.logging_steps, save_strategy="steps",
        save_steps=g.save_steps, save_total_limit=1, bf16=g.bf16,
        reward_weights=[1.0, cfg.reward.format_weight], seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        use_cpu=resolve_device(cfg.device) == "cpu", remove_unused_columns=False, disable_tqdm=False,
    )


@dataclass
class LLMTrainResult:
    """Where the adapter went, the optimiser steps done and the training wall time."""

    output: Path
    steps: int
    wall_time_s: float


def train_grpo(cfg: RankR1Config, base: Path = Path("."), resume: bool = False) -> LLMTrainResult:
    """Train a Rank-R1 LoRA adapter as configured; relative paths in ``cfg.data`` resolve against ``base``."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import GRPOTrainer

    from rankkit.llm import load_tokenizer, resolve_causal_lm
    from rankkit.runcard import seed_everything

    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    output = output_folder(cfg.output, base)
    template = resolve_template(cfg.template, cfg.prefix)
    tokenizer = load_tokenizer(cfg.model)
    examples = prepare_examples(cfg.data, template, tokenizer, base, cfg.seed)
    train = datasets.Dataset.from_list([{"prompt": e["prompt"], "label": e["label"]} for e in examples])
    model = AutoModelForCausalLM.from_pretrained(resolve_causal_lm(cfg.model), dtype="float32")
    checkpoints = str(output) + ".checkpoints"
    trainer = GRPOTrainer(model=model, reward_funcs=[SetwiseReward("correct", template.prefix),
                                                     SetwiseReward("format", template.prefix)],
                          args=grpo_args(cfg, checkpoints), train_dataset=train, processing_class=tokenizer,
                          peft_config=peft_lora(cfg.lora), callbacks=[time_budget_callback(cfg.grpo.max_time_s)])
    trainer.train(resume_from_checkpoint=True if resume and Path(checkpoints).is_dir() else None)
    return LLMTrainResult(*finish(trainer, "grpo", cfg, len(examples), output, template, t0))
