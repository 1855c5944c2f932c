"""Rank-R1 GRPO and Setwise-SFT plumbing: rewards as trl sees them, configs, prompt-length checks, budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit.errors import ConfigError
from rankkit.train.grpo import SetwiseReward, grpo_args
from rankkit.train.llm_config import GRPOSettings, RankR1Config
from rankkit.train.setwise_common import prepare_examples, resolve_template, time_budget_callback


def test_rewards_put_the_prefix_back_and_read_chat_completions() -> None:
    correct = SetwiseReward("correct", prefix="<think>")
    assert correct.__name__ == "correct"
    completions = [" doc 2 fits </think> <answer>[2]</answer>", " x </think> <answer>[1]</answer>", "[2]"]
    assert correct(completions, label=["[2]", "[2]", "[2]"]) == [1.0, 0.0, 0.0]
    chat = [[{"role": "assistant", "content": completions[0]}]]
    assert correct(chat, label=["[2]"]) == [1.0]
    assert SetwiseReward("format", "<think>")(completions) == [1.0, 1.0, 0.0]
    assert SetwiseReward("format")(completions) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="label"):
        correct(completions)


def test_every_grpo_setting_reaches_trl(tmp_path: Path) -> None:
    cfg = RankR1Config(grpo=GRPOSettings(beta=0.0123, num_generations=3, per_device_train_batch_size=6,
                                         temperature=0.7, max_completion_length=77, epsilon=0.3, loss_type="dapo"))
    cfg.reward.format_weight = 0.25
    args = grpo_args(cfg, str(tmp_path))
    assert (args.beta, args.num_generations, args.temperature, args.max_completion_length, args.epsilon,
            args.loss_type, args.reward_weights) == (0.0123, 3, 0.7, 77, 0.3, "dapo", [1.0, 0.25])
    with pytest.raises(ValueError, match="multiple of num_generations"):
        GRPOSettings(num_generations=3, per_device_train_batch_size=8)


def test_one_precision_maps_to_trl_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from rankkit.train.llm_config import SetwiseSFTConfig
    from rankkit.train.setwise_common import trl_args

    cpu = {"device": "cpu"}
    auto = grpo_args(RankR1Config(**cpu), str(tmp_path))
    assert not auto.bf16 and not auto.fp16  # auto on the CPU: no autocast
    args = grpo_args(RankR1Config(precision="bf16", **cpu), str(tmp_path))
    assert args.bf16 and not args.fp16 and args.use_cpu
    sft = trl_args(SetwiseSFTConfig(precision="fp32", **cpu), SetwiseSFTConfig().sft)
    assert (sft["bf16"], sft["fp16"], sft["use_cpu"], sft["seed"]) == (False, False, True, 42)
    assert trl_args(RankR1Config(precision="fp16", device="cuda"), GRPOSettings())["fp16"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU with bf16 support
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert trl_args(RankR1Config(device="cuda"), GRPOSettings())["bf16"]  # auto on CUDA: bf16 where supported
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert trl_args(RankR1Config(device="cuda"), GRPOSettings())["fp16"]  # before Ampere: fp16
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16, got 'bfloat16'"):
        RankR1Config(precision="bfloat16")


def test_old_bf16_key_is_refused(tmp_path: Path) -> None:
    from rankkit.train.config import load_config

    path = tmp_path / "old.yaml"
    path.write_text("grpo:\n  bf16: true\n")
    with pytest.raises(ConfigError, match="unknown key 'bf16'"):
        load_config(RankR1Config, path)


def test_prompt_longer_than_the_limit_names_the_query(train_folder: Path, tiny_llm: Path) -> None:
    from rankkit.llm import load_tokenizer
    from rankkit.train.llm_config import SetwiseDataSettings

    data = SetwiseDataSettings(dataset=str(train_folder), split="train", first_stage=str(train_folder / "run.trec"),
                               set_size=3, passage_tokens=None, max_prompt_tokens=50)
    with pytest.raises(ConfigError, match=r"max_prompt_tokens is 50 but the prompt for query '[^']+' has \d+ tokens"):
        prepare_examples(data, resolve_template("setwise-r1", None), load_tokenizer(str(tiny_llm)), Path("."), 0)


def test_time_budget_stops_training() -> None:
    from transformers import TrainerControl

    cb = time_budget_callback(0.0)
    assert cb.on_step_end(None, None, TrainerControl()).should_training_stop
    assert not time_budget_callback(None).on_step_end(None, None, TrainerControl()).should_training_stop


def test_output_folder_is_relative_to_the_config_and_never_clobbers(tmp_path: Path) -> None:
    from rankkit.train.setwise_common import META_FILE, output_folder

    assert output_folder("../models/x", tmp_path / "pipelines") == tmp_path / "pipelines" / "../models/x"
    assert output_folder(str(tmp_path / "abs"), Path("elsewhere")) == tmp_path / "abs"
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match="not a rankkit setwise adapter folder"):
        output_folder(str(tmp_path / "data"), tmp_path)
    (tmp_path / "data" / META_FILE).write_text("{}")
    assert output_folder(str(tmp_path / "data"), tmp_path) == tmp_path / "data"
