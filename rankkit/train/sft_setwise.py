"""The Setwise-SFT baseline of Rank-R1: the same setwise prompts, answered without reasoning.

:func:`train_sft_setwise` builds the prompts of :class:`SetwiseSFTConfig` (by
default the plain ``setwise`` template) with the target ``<answer>[i]</answer>``
and fine-tunes a LoRA adapter with trl's ``SFTTrainer`` on prompt-completion pairs,
so the loss covers the completion only.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rankkit.models import resolve_device
from rankkit.train.grpo import LLMTrainResult
from rankkit.train.llm_config import SetwiseSFTConfig
from rankkit.train.setwise_common import finish, output_folder, peft_lora, prepare_examples, resolve_template

log = logging.getLogger(__name__)


def train_sft_setwise(cfg: SetwiseSFTConfig, base: Path = Path(".")) -> LLMTrainResult:
    """Train the Setwise-SFT LoRA adapter as configured; relative data paths resolve against ``base``."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from rankkit.llm import load_tokenizer, resolve_causal_lm
    from rankkit.runcard import seed_everything

    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    output = output_folder(cfg.output, base)
    template = resolve_template(cfg.template, cfg.prefix)
    tokenizer = load_tokenizer(cfg.model)
    tokenizer.padding_side = "right"
    examples = prepare_examples(cfg.data, template, tokenizer, base, cfg.seed)
    train = datasets.Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    s = cfg.sft
    args = SFTConfig(
        output_dir=str(output) + ".checkpoints", learning_rate=s.learning_rate,
        per_device_train_batch_size=s.per_device_train_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps, num_train_epochs=s.num_train_epochs,
        max_steps=s.max_steps, max_length=s.max_length, warmup_steps=s.warmup_steps,
        lr_scheduler_type=s.lr_scheduler_type, weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm,
        logging_steps=s.logging_steps, bf16=s.bf16, completion_only_loss=True, packing=False,
        save_strategy="no", seed=cfg.seed, data_seed=cfg.seed, report_to="none", use_cpu=resolve_device(cfg.device) == "cpu",
    )
    model = AutoModelForCausalLM.from_pretrained(resolve_causal_lm(cfg.model), dtype="float32")
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                         peft_config=peft_lora(cfg.lora))
    trainer.train()
    return LLMTrainResult(*finish(trainer, "sft", cfg, len(examples), output, template, t0))
