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
from pathlib import Path
from typing import Any

from rankkit.rerank.setwise_parse import partial_format, rank_r1_reward
from rankkit.train.llm_config import RankR1Config
from rankkit.train.setwise_common import (LLMTrainResult, finish, peft_lora, start_training, time_budget_callback,
                                          trl_args)

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


def grpo_args(cfg: RankR1Config, output_dir: str, show_progress: bool = True) -> Any:
    """The ``trl.GRPOConfig`` of ``cfg``: every setting explicit, logging each step, no external reporting."""
    from trl import GRPOConfig

    g = cfg.grpo
    return GRPOConfig(
        output_dir=output_dir, beta=g.beta, num_generations=g.num_generations, temperature=g.temperature,
        top_p=g.top_p, top_k=g.top_k, max_completion_length=g.max_completion_length,
        num_iterations=g.num_iterations, epsilon=g.epsilon, loss_type=g.loss_type, scale_rewards=g.scale_rewards,
        mask_truncated_completions=g.mask_truncated_completions, save_strategy="steps", save_steps=g.save_steps,
        save_total_limit=1, reward_weights=[1.0, cfg.reward.format_weight], remove_unused_columns=False,
        disable_tqdm=not show_progress, **trl_args(cfg, g),
    )


def train_grpo(cfg: RankR1Config, base: Path = Path("."), resume: bool = False,
               show_progress: bool = True) -> LLMTrainResult:
    """Train a Rank-R1 LoRA adapter as configured; relative paths in ``cfg.data`` resolve against ``base``."""
    import datasets
    from trl import GRPOTrainer

    start = start_training(cfg, base)
    prefix = start.template.prefix
    train = datasets.Dataset.from_list([{"prompt": e["prompt"], "label": e["label"]} for e in start.examples])
    checkpoints = str(start.output) + ".checkpoints"
    trainer = GRPOTrainer(model=start.model, reward_funcs=[SetwiseReward("correct", prefix),
                                                           SetwiseReward("format", prefix)],
                          args=grpo_args(cfg, checkpoints, show_progress), train_dataset=train,
                          processing_class=start.tokenizer,
                          peft_config=peft_lora(cfg.lora), callbacks=[time_budget_callback(cfg.grpo.max_time_s)])
    trainer.train(resume_from_checkpoint=True if resume and Path(checkpoints).is_dir() else None)
    return finish(trainer, "grpo", cfg, start)
