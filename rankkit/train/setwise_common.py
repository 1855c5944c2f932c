"""What GRPO and SFT training of setwise LLM rerankers share: start-up, prompts, LoRA, trl args, saving.

:func:`start_training` is the common start of both trainers (seed, timer, output
folder, template, tokenizer, examples, fp32 base model); :func:`prepare_examples`
loads the split and its first-stage run and builds the setwise examples (checking
every prompt against ``max_prompt_tokens``); :func:`trl_args` gives the trl settings
both trainers share (optimiser, schedule, seeds, device, precision);
:func:`save_trained` writes the adapter plus ``template.toml`` and
``rankkit_setwise.json`` (base model, template, config, training log) into the
output folder atomically, so the setwise stage can load it with ``adapter:``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankkit.errors import ConfigError
from rankkit.models import resolve_device
from rankkit.precision import mixed_precision
from rankkit.rerank.setwise_prompt import TEMPLATE_FILE, SetwiseTemplate, load_template, save_template
from rankkit.train.config import LoraSettings
from rankkit.train.llm_config import LLMTrainingConfig, SetwiseDataSettings
from rankkit.trec import atomic_dir

log = logging.getLogger(__name__)

META_FILE = "rankkit_setwise.json"
# trl settings with the same name and meaning in GRPOSettings and SFTSettings
_SHARED_TRL_KEYS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps",
                    "warmup_steps", "lr_scheduler_type", "weight_decay", "max_grad_norm", "logging_steps")


@dataclass
class LLMTrainResult:
    """Where the adapter went, the optimiser steps done and the training wall time."""

    output: Path
    steps: int
    wall_time_s: float


@dataclass
class TrainingStart:
    """What GRPO and SFT training start from (see :func:`start_training`)."""

    output: Path
    template: SetwiseTemplate
    tokenizer: Any
    examples: list[dict[str, Any]]
    model: Any
    started: float  # time.perf_counter() at the start, for the wall time


def resolve_template(name: str, prefix: str | None) -> SetwiseTemplate:
    """The named template, with its assistant ``prefix`` replaced when one is given."""
    template = load_template(name)
    return template if prefix is None else dataclasses.replace(template, prefix=prefix)


def prepare_examples(data: SetwiseDataSettings, template: SetwiseTemplate, tokenizer: Any, base: Path,
                     seed: int) -> list[dict[str, Any]]:
    """Setwise examples for ``data`` (see :mod:`rankkit.train.setwise_data`), length-checked."""
    from rankkit.data import load_dataset
    from rankkit.train.data import first_stage_run
    from rankkit.train.setwise_data import build_setwise_examples

    dataset = load_dataset(data.dataset, data.split)
    if dataset.qrels.num_judgements == 0:
        raise ConfigError(f"data.dataset {data.dataset!r} has no qrels: setwise training needs relevance labels")
    run = first_stage_run(data.first_stage, dataset, base)
    examples = build_setwise_examples(dataset, run, template, tokenizer, set_size=data.set_size,
                                      negatives_depth=data.negatives_depth, num_prompts=data.num_prompts,
                                      passage_tokens=data.passage_tokens, query_tokens=data.query_tokens, seed=seed)
    if not examples:
        raise ConfigError(f"data.dataset {data.dataset!r}: no setwise prompts could be built")
    lengths = [len(ids) for ids in tokenizer([e["prompt"] for e in examples], add_special_tokens=False)["input_ids"]]
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[longest] > data.max_prompt_tokens:
        raise ConfigError(f"data.max_prompt_tokens is {data.max_prompt_tokens} but the prompt for query "
                          f"{examples[longest]['qid']!r} has {lengths[longest]} tokens; lower "
                          "data.passage_tokens or data.set_size, or raise data.max_prompt_tokens")
    return examples


def start_training(cfg: LLMTrainingConfig, base: Path, padding_side: str = "left") -> TrainingStart:
    """Seed, start the clock, check the output folder, and load template, tokenizer, examples and fp32 model.

    Relative paths in ``cfg`` resolve against ``base`` (the config file's folder);
    ``padding_side`` is the tokenizer's (``left`` for generation, ``right`` for SFT).
    """
    from transformers import AutoModelForCausalLM

    from rankkit.llm import load_tokenizer
    from rankkit.models import resolve_model
    from rankkit.runcard import seed_everything

    seed_everything(cfg.seed)
    started = time.perf_counter()
    output = output_folder(cfg.output, base)
    template = resolve_template(cfg.template, cfg.prefix)
    tokenizer = load_tokenizer(cfg.model)
    tokenizer.padding_side = padding_side
    examples = prepare_examples(cfg.data, template, tokenizer, base, cfg.seed)
    # fp32 master weights; trl's bf16/fp16 flags (cfg.precision) add autocast on top
    model = AutoModelForCausalLM.from_pretrained(resolve_model(cfg.model), dtype="float32")
    return TrainingStart(output, template, tokenizer, examples, model, started)


def trl_args(cfg: LLMTrainingConfig, settings: Any) -> dict[str, Any]:
    """Keyword arguments that trl's ``GRPOConfig`` and ``SFTConfig`` share.

    The optimiser and schedule values of ``settings`` (``cfg.grpo`` or ``cfg.sft``),
    the seeds, the device (``use_cpu``), ``cfg.precision`` mapped to trl's ``bf16``/``fp16``
    flags, and no external reporting.
    """
    device = resolve_device(cfg.device)
    mp = mixed_precision(cfg.precision, device)
    return {k: getattr(settings, k) for k in _SHARED_TRL_KEYS} | {
        "bf16": mp == "bf16", "fp16": mp == "fp16", "use_cpu": device == "cpu", "seed": cfg.seed,
        "data_seed": cfg.seed, "report_to": "none"}


def peft_lora(settings: LoraSettings) -> Any:
    """The peft ``LoraConfig`` for a causal LM from rankkit's LoRA settings."""
    from peft import LoraConfig

    if not settings.enabled:
        raise ConfigError("lora.enabled: false is not supported for LLM rerankers (train a LoRA adapter)")
    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, bias="none",
                      task_type="CAUSAL_LM", target_modules=list(settings.target_modules))


def time_budget_callback(max_time_s: float | None) -> Any:
    """A ``TrainerCallback`` that stops training after ``max_time_s`` seconds (``None``: never)."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Stops at the first step boundary past the budget and records it in the log."""

        def __init__(self) -> None:
            self.start = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if max_time_s is not None and time.monotonic() - self.start > max_time_s:
                control.should_training_stop = True
            return control

    return TimeBudget()


def output_folder(output: str, base: Path) -> Path:
    """The adapter folder: ``output`` relative to the config's folder ``base``, refusing to overwrite other data."""
    path = Path(output) if Path(output).is_absolute() else base / output
    if path.exists() and not (path / META_FILE).is_file():
        raise ConfigError(f"output {path} exists and is not a rankkit setwise adapter folder; refusing to overwrite it")
    return path


def save_trained(trainer: Any, output: Path, template: SetwiseTemplate, meta: dict[str, Any]) -> Path:
    """Save ``trainer``'s adapter, the template and ``meta`` (+ the training log) into ``output`` atomically."""
    with atomic_dir(output) as tmp:
        trainer.save_model(str(tmp))
        save_template(template, tmp)
        meta = dict(meta, template=TEMPLATE_FILE, log_history=trainer.state.log_history)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    return output


def finish(trainer: Any, kind: str, cfg: LLMTrainingConfig, start: TrainingStart) -> LLMTrainResult:
    """Save a finished GRPO/SFT run (adapter, template, meta with config, log and versions)."""
    from rankkit.runcard import versions

    wall = time.perf_counter() - start.started
    steps = trainer.state.global_step
    meta = {"kind": kind, "base_model": cfg.model, "config": dataclasses.asdict(cfg),
            "num_prompts": len(start.examples), "steps": steps, "wall_time_s": round(wall, 1),
            "versions": versions()}
    out = save_trained(trainer, start.output, start.template, meta)
    log.info("%s: %d steps in %.0f s -> %s", kind, steps, wall, out)
    return LLMTrainResult(out, steps, wall)
