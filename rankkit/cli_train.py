"""CLI commands for training and adapters: ``rankkit train reranker|grpo|sft-setwise``, ``rankkit adapters``.

``train reranker`` reads :class:`rankkit.train.config.TrainConfig` (``pipelines/train_ce_*.yaml``);
``train grpo`` and ``train sft-setwise`` read :class:`rankkit.train.llm_config.RankR1Config` and
:class:`~rankkit.train.llm_config.SetwiseSFTConfig`. ``--set key=value`` overrides any key, dotted for
nested sections (``--set lora.rank=8``). Every training command gets the same options and
its loaded config from one decorator (:func:`training_options`, which calls
:func:`load_training_config`). Kept apart from :mod:`rankkit.cli` so that module stays
small; :func:`register` attaches the groups to the main app.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rankkit.errors import ConfigError

if TYPE_CHECKING:
    from rankkit.train.config import TrainConfig
    from rankkit.train.llm_config import RankR1Config, SetwiseSFTConfig

T = TypeVar("T")


def _parse_sets(items: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` items as ``{dotted key: value}``; each value is read as YAML (with its bounds)."""
    from rankkit.yaml_io import parse_yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise click.BadParameter(f"expected a (dotted) key before '=', got {item!r}", param_hint="--set")
        out[key] = parse_yaml(value, f"--set {key}")
    return out


def training_options(config_class: str, config_help: str, output_help: str, set_help: str,
                     resume: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a training command the shared options and hand it its loaded config.

    Adds ``--config``, ``--output``, ``--resume`` (unless ``resume=False``), ``--seed``,
    ``--set`` and ``--quiet``; reads the YAML into ``config_class`` (a dotted name, imported
    when the command runs) with :func:`load_training_config`; and calls the command as
    ``fn(config, yaml_folder, show_progress=..., resume=...)`` (no ``resume`` without ``--resume``).
    ``--quiet`` also turns off the progress bars of transformers, huggingface_hub and datasets.
    """
    options = [
        click.option("--config", "config_path", required=True, type=click.Path(), help=config_help),
        click.option("--output", default=None, help=output_help),
    ]
    if resume:
        options.append(click.option("--resume", is_flag=True,
                                    help="Continue from the newest checkpoint of the same output."))
    options += [
        click.option("--seed", type=int, default=None, help="Override the config's seed."),
        click.option("--set", "sets", multiple=True, help=set_help),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def command(config_path: str, output: str | None, seed: int | None, sets: tuple[str, ...],
                    quiet: bool, **flags: Any) -> Any:
            module, _, name = config_class.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            cfg, base = load_training_config(cls, config_path, output, seed, sets)
            if quiet:
                _silence_progress_bars()
            return fn(cfg, base, show_progress=not quiet, **flags)

        for option in reversed(options):
            command = option(command)
        return command

    return deco


def _silence_progress_bars() -> None:
    """Turn off the progress bars of the libraries training calls (weights loading, dataset maps)."""
    import datasets
    import huggingface_hub
    import transformers

    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
    datasets.disable_progress_bars()


def load_training_config(cls: type[T], config_path: str, output: str | None, seed: int | None,
                         sets: tuple[str, ...]) -> tuple[T, Path]:
    """Read a training YAML into ``cls`` with the ``--set``/``--seed``/``--output`` overrides applied.

    Returns (config, the YAML's folder); errors are :class:`ConfigError` naming the file and key.
    Every value is validated here, before any dataset, index or model is touched (the
    config modules do not even import torch), so a bad value fails within a second or two.
    """
    from rankkit.train.config import load_config

    overrides = _parse_sets(sets)
    if seed is not None:
        overrides["seed"] = seed
    if output:
        overrides["output"] = str(Path(output).resolve())
    return load_config(cls, config_path, overrides)


def _echo_result(label: str, result: Any) -> None:
    click.echo(f"{label}: {result.output}")
    click.echo(f"steps: {result.steps}  wall time: {result.wall_time_s:.0f} s")


@click.group("train")
def train_group() -> None:
    """Train rerankers: cross-encoders (LoRA or full), setwise LLMs with GRPO (Rank-R1) or SFT."""


@train_group.command("reranker")
@training_options("rankkit.train.config.TrainConfig", "Training YAML (TrainConfig).",
                  "Model folder (overrides the config's output).",
                  "Override a config key: --set lora.rank=8 (repeatable).")
def train_reranker_cmd(cfg: TrainConfig, base: Path, show_progress: bool, resume: bool) -> None:
    """Train a reranker (cross-encoder, bi-encoder, TSPRank head) as configured and print where it was written.

    Under accelerate launch (several processes, see the README) only the main process prints.
    """
    from rankkit.train.loop import train_reranker

    logging.getLogger("accelerate").setLevel(logging.WARNING)
    result = train_reranker(cfg, base, resume=resume, show_progress=show_progress)
    if not result.is_main_process:
        return
    _echo_result("model", result)
    if result.num_processes > 1:
        click.echo(f"processes: {result.num_processes}  groups per process and step: "
                   f"{cfg.batch_size // result.num_processes}")
    if result.best_metric is not None:
        click.echo(f"best dev {cfg.select_metric}: {result.best_metric:.4f}")
    if result.interpolation:
        click.echo(f"interpolation weight (dev): {result.interpolation['weight']}")


@train_group.command("grpo")
@training_options("rankkit.train.llm_config.RankR1Config", "Rank-R1 YAML (RankR1Config).",
                  "Adapter folder (overrides the config's output).",
                  "Override a config key: --set grpo.beta=0.0 (repeatable).")
def train_grpo_cmd(cfg: RankR1Config, base: Path, show_progress: bool, resume: bool) -> None:
    """Train a setwise LLM reranker with GRPO (Rank-R1) and a LoRA adapter."""
    from rankkit.train.grpo import train_grpo

    _echo_result("adapter", train_grpo(cfg, base, resume=resume, show_progress=show_progress))


@train_group.command("sft-setwise")
@training_options("rankkit.train.llm_config.SetwiseSFTConfig", "SFT YAML (SetwiseSFTConfig).",
                  "Adapter folder (overrides the config's output).",
                  "Override a config key: --set sft.learning_rate=5e-5.", resume=False)
def train_sft_cmd(cfg: SetwiseSFTConfig, base: Path, show_progress: bool) -> None:
    """Train the Setwise-SFT baseline (answers without reasoning) with a LoRA adapter."""
    from rankkit.train.sft_setwise import train_sft_setwise

    _echo_result("adapter", train_sft_setwise(cfg, base, show_progress=show_progress))


@click.group("adapters")
def adapters_group() -> None:
    """Operate on trained LoRA adapters: squeeze (compress) and merge."""


@adapters_group.command("squeeze")
@click.argument("model", type=click.Path(exists=True))
@click.option("--output", required=True, type=click.Path(), help="Folder for the squeezed model.")
@click.option("--rank", type=int, default=None, help="Target rank for every layer.")
@click.option("--energy", type=float, default=None, help="Per-layer rank keeping this share of squared singular values.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--continue-config", type=click.Path(), default=None,
              help="Training YAML for a short continued training of the squeezed adapter.")
@click.option("--continue-steps", type=int, default=0, show_default=True, help="Steps of continued training.")
def squeeze_cmd(model: str, output: str, rank: int | None, energy: float | None, overwrite: bool,
                continue_config: str | None, continue_steps: int) -> None:
    """Compress MODEL's LoRA adapter to a lower rank with the exact SVD of B·A (LoRA-Squeeze)."""
    from rankkit.train.squeeze import squeeze_adapter

    if (rank is None) == (energy is None):
        raise click.UsageError("give exactly one of --rank and --energy")
    try:
        report = squeeze_adapter(model, output, rank=rank, energy=energy, overwrite=overwrite)
    except (ValueError, FileExistsError) as exc:
        raise ConfigError(f"{model}: {exc}") from None
    mods = report["modules"]
    kept = [m["energy_kept"] for m in mods.values()]
    click.echo(f"{len(mods)} modules; LoRA parameters {report['params_before']} -> {report['params_after']}; "
               f"energy kept min {min(kept):.4f} mean {sum(kept) / len(kept):.4f}")
    if continue_steps:
        if not continue_config:
            raise click.UsageError("--continue-steps needs --continue-config (the training data and settings)")
        from rankkit.train.config import load_train_config
        from rankkit.train.loop import train_reranker

        cfg, base = load_train_config(continue_config, {"max_steps": continue_steps, "warmup_steps": 0})
        cfg.model.init_from = str(Path(output).resolve())
        cfg.output = str(Path(output).resolve())
        logging.getLogger("accelerate").setLevel(logging.WARNING)
        result = train_reranker(cfg, base)
        click.echo(f"continued {result.steps} steps: {result.output}")
    click.echo(json.dumps({"output": str(output)}))


@adapters_group.command("merge")
@click.argument("model", type=click.Path(exists=True))
@click.option("--output", required=True, type=click.Path(), help="Folder for the merged (plain HF) model.")
@click.option("--base", default=None, help="Base model (default: the one recorded with the adapter).")
def merge_cmd(model: str, output: str, base: str | None) -> None:
    """Fold MODEL's LoRA adapter into its base weights and write a plain HF model (plus the scoring head)."""
    from rankkit.rerank.ce_model import CrossEncoderModel

    ce = CrossEncoderModel.load(model, base=base)
    if not ce.is_peft:
        raise ConfigError(f"{model}: has no LoRA adapter to merge")
    click.echo(f"merged model: {ce.merge(output)}")


def register(app: click.Group) -> None:
    """Attach the ``train`` and ``adapters`` command groups to the main CLI."""
    app.add_command(train_group)
    app.add_command(adapters_group)
