"""What GRPO and SFT training of setwise LLM rerankers share: prompts, LoRA, budgets, saving.

:func:`prepare_examples` loads the split and its first-stage run and builds the
setwise examples (checking every prompt against ``max_prompt_tokens``);
:func:`save_trained` writes the adapter plus ``template.toml`` and
``rankkit_setwise.json`` (base model, template, config, training log) into the
output folder atomically, so the setwise stage can load it with ``adapter:``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from rankkit.errors import ConfigError
from rankkit.rerank.setwise_prompt import SetwiseTemplate, load_template
from rankkit.train.config import LoraSettings
from rankkit.train.llm_config import SetwiseDataSettings
from rankkit.trec import atomic_dir

log = logging.getLogger(__name__)

META_FILE = "rankkit_setwise.json"
TEMPLATE_FILE = "template.toml"


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


def _toml_template(t: SetwiseTemplate) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in (("name", t.name), ("reasoning", t.reasoning),
                                                          ("prefix", t.prefix), ("system", t.system),
                                                          ("user", t.user), ("document", t.document)))


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
        (tmp / TEMPLATE_FILE).write_text(_toml_template(template), encoding="utf-8")
        meta = dict(meta, template=TEMPLATE_FILE, log_history=trainer.state.log_history)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    return output


def finish(trainer: Any, kind: str, cfg: Any, num_prompts: int, output: Path, template: SetwiseTemplate,
           started: float) -> tuple[Path, int, float]:
    """Save a finished GRPO/SFT run (adapter, template, meta with config, log and versions); (folder, steps, wall s)."""
    from dataclasses import asdict

    from rankkit.runcard import versions

    wall = time.perf_counter() - started
    steps = trainer.state.global_step
    meta = {"kind": kind, "base_model": cfg.model, "config": asdict(cfg), "num_prompts": num_prompts,
            "steps": steps, "wall_time_s": round(wall, 1), "versions": versions()}
    out = save_trained(trainer, output, template, meta)
    log.info("%s: %d steps in %.0f s -> %s", kind, steps, wall, out)
    return out, steps, wall


def saved_template(adapter: str | Path) -> str | None:
    """The template file saved with a trained adapter folder, if any."""
    path = Path(adapter) / TEMPLATE_FILE
    return str(path) if path.is_file() else None
