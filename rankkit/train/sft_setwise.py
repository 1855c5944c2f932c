"""The Setwise-SFT baseline of Rank-R1: the same setwise prompts, answered without reasoning.

:func:`train_sft_setwise` builds the prompts of :class:`SetwiseSFTConfig` (by
default the plain ``setwise`` template) with the target ``<answer>[i]</answer>``
and fine-tunes a LoRA adapter with trl's ``SFTTrainer`` on prompt-completion pairs,
so the loss covers the completion only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rankkit.train.llm_config import SetwiseSFTConfig
from rankkit.train.setwise_common import LLMTrainResult, finish, peft_lora, start_training, trl_args

log = logging.getLogger(__name__)


def train_sft_setwise(cfg: SetwiseSFTConfig, base: Path = Path("."), show_progress: bool = True) -> LLMTrainResult:
    """Train the Setwise-SFT LoRA adapter as configured; relative data paths resolve against ``base``."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    start = start_training(cfg, base, padding_side="right")
    train = datasets.Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]}
                                        for e in start.examples])
    s = cfg.sft
    args = SFTConfig(output_dir=str(start.output) + ".checkpoints", num_train_epochs=s.num_train_epochs,
                     max_length=s.max_length, completion_only_loss=True, packing=False, save_strategy="no", disable_tqdm=not show_progress,
                     **trl_args(cfg, s))
    trainer = SFTTrainer(model=start.model, args=args, train_dataset=train, processing_class=start.tokenizer,
                         peft_config=peft_lora(cfg.lora))
    trainer.train()
    return finish(trainer, "sft", cfg, start)
