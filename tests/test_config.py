"""Configs are validated when read: from_mapping's rules and messages, the training configs' ranges, YAML bounds.

Pure config tests (milliseconds each): nothing here loads a dataset or a model.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from rankkit.config import NonEmptyStr, PositiveInt, apply_overrides, from_mapping, validate_fields
from rankkit.errors import ConfigError, RankkitError
from rankkit.train.config import LoraSettings, TrainConfig, load_config, load_train_config
from rankkit.train.curriculum import CurriculumConfig
from rankkit.train.groups import GroupConfig
from rankkit.train.llm_config import RankR1Config, SetwiseSFTConfig
from rankkit.train.objectives import objective_spec
from rankkit.yaml_io import check_structure, load_yaml, parse_yaml

ROOT = Path(__file__).resolve().parents[1]


# --- from_mapping on a small config of its own -------------------------------------------------------------------


@dataclass
class Inner:
    rank: PositiveInt = 4
    names: list[str] = field(default_factory=lambda: ["a"])
    weights: dict[str, float] = field(default_factory=dict)

    __config_shorthand__ = "rank"

    def __post_init__(self) -> None:
        if self.rank == 13:
            raise ValueError("rank 13 is unlucky")


@dataclass
class Outer:
    name: NonEmptyStr
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    lr: Annotated[float, Field(gt=0)] = 0.1
    mode: Literal["fast", "slow"] = "fast"
    flag: bool = False
    path: str | None = None
    anything: Any = None
    dev: Annotated[float | int | str | None, Field(description="a fraction, a count, a name or null")] = None


def problems(cls: type, values: Any, where: str = "c.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        from_mapping(cls, values, where)
    lines = str(info.value).splitlines()
    assert info.value.problems == lines  # type: ignore[attr-defined]
    return lines


def test_valid_values_build_the_dataclass_with_nested_sections() -> None:
    cfg = from_mapping(Outer, {"name": "x", "inner": {"rank": 2, "weights": {"t": 1}}, "maybe": {"rank": 3}, "lr": 1,
                               "anything": object, "dev": 3}, "c.yaml")
    assert cfg.inner == Inner(rank=2, weights={"t": 1.0}) and cfg.maybe == Inner(rank=3)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.anything is object and cfg.dev == 3
    # a bare value of a section with a shorthand; an instance passes through
    assert from_mapping(Outer, {"name": "x", "inner": 7}).inner == Inner(rank=7)
    inner = Inner(rank=9)
    assert from_mapping(Outer, {"name": "x", "inner": inner}).inner is inner
    # Python conveniences: a path for a string, a tuple for a list
    cfg = from_mapping(Outer, {"name": "x", "path": Path("/tmp/p"), "inner": {"names": ("b", "c")}})
    assert cfg.path == "/tmp/p" and cfg.inner.names == ["b", "c"]


@pytest.mark.parametrize("values, expected", [
    ({"name": "x", "lr": "fast"}, "c.yaml: lr must be a number > 0, got 'fast'"),
    ({"name": "x", "lr": True}, "c.yaml: lr must be a number > 0, got True"),
    ({"name": "x", "lr": float("nan")}, "c.yaml: lr must be a finite number > 0, got nan"),
    ({"name": "x", "lr": float("inf")}, "c.yaml: lr must be a finite number > 0, got inf"),
    ({"name": "x", "lr": "5e-4"}, "c.yaml: lr must be a number > 0, got '5e-4' (YAML reads 5e-4 as a string; "
                                  "write 5.0e-4)"),
    ({"name": "x", "lr": "0.5"}, "got '0.5' (a string, not a number: remove the quotes)"),
    ({"name": "x", "flag": "no"}, "c.yaml: flag must be true or false, got 'no'"),
    ({"name": "x", "flag": 1}, "c.yaml: flag must be true or false, got 1"),
    ({"name": "x", "inner": {"rank": 2.5}}, "c.yaml: inner.rank must be an integer >= 1, got 2.5"),
    ({"name": "x", "inner": {"rank": 2.0}}, "c.yaml: inner.rank must be an integer >= 1, got 2.0"),
    ({"name": "x", "inner": {"names": "a"}}, "c.yaml: inner.names must be a list of strings, got 'a'"),
    ({"name": "x", "inner": {"names": ["a", 5]}}, "c.yaml: inner.names[1] must be a string, got 5"),
    ({"name": "x", "inner": {"weights": {"t": "heavy"}}}, "c.yaml: inner.weights.t must be a number, got 'heavy'"),
    ({"name": "x", "mode": "fsat"}, "c.yaml: mode must be one of fast, slow, got 'fsat' (did you mean 'fast'?)"),
    ({"name": "x", "dev": [1]}, "c.yaml: dev must be a fraction, a count, a name or null, got [1]"),
    ({"name": "x", "inner": "many"}, "c.yaml: inner must be a mapping of options or an integer >= 1 "
                                     "(short for {rank: ...}), got 'many'"),
    ({"name": "x", "maybe": "x"}, "c.yaml: maybe must be a mapping of options or an integer >= 1 "
                                  "(short for {rank: ...}) or null, got 'x'"),
    ({"name": "x", "inner": {"rnak": 2}}, "c.yaml: inner: unknown key 'rnak' (did you mean 'rank'?); "
                                          "allowed keys: names, rank, weights"),
    ({"name": "x", "inner": {"rank": 13}}, "c.yaml: inner: rank 13 is unlucky"),
    ({}, "c.yaml: missing required key 'name'"),
    ({"name": ""}, "c.yaml: name must be a non-empty string, got ''"),
    ({"name": "x", "lr": "y" * 500}, "c.yaml: lr must be a number > 0, got 'yyyyyyyyyy"),
])
def test_each_bad_value_is_one_line_naming_file_key_expectation_and_value(values: dict, expected: str) -> None:
    lines = problems(Outer, values)
    assert len(lines) == 1 and expected in lines[0], lines
    assert len(lines[0]) < 300


def test_every_problem_is_reported_at_once_in_field_order() -> None:
    lines = problems(Outer, {"name": "", "zzz": 1, "inner": {"rank": 0, "oops": 1}, "lr": -1, "mode": "x"})
    assert lines == [
        "c.yaml: unknown key 'zzz'; allowed keys: anything, dev, flag, inner, lr, maybe, mode, name, path",
        "c.yaml: name must be a non-empty string, got ''",
        "c.yaml: inner: unknown key 'oops'; allowed keys: names, rank, weights",
        "c.yaml: inner.rank must be an integer >= 1, got 0",
        "c.yaml: lr must be a number > 0, got -1",
        "c.yaml: mode must be one of fast, slow, got 'x'",
    ]


def test_where_names_a_file_a_section_of_a_file_or_a_label() -> None:
    assert problems(Outer, {"name": "x", "lr": 0}, "p.yaml: stages[0].thing") == [
        "p.yaml: stages[0].thing.lr must be a number > 0, got 0"]
    assert problems(Outer, {"name": "x", "lr": 0}, "Thing") == ["Thing.lr must be a number > 0, got 0"]
    assert problems(Outer, {"name": "x", "lr": 0}, "") == ["lr must be a number > 0, got 0"]
    assert problems(Outer, {"name": "x", "inner": {"rank": 0}}, "/tmp/cfg/x") == [
        "/tmp/cfg/x: inner.rank must be an integer >= 1, got 0"]
    assert problems(Outer, ["name"], "c.yaml") == ["c.yaml must be a mapping of options, got ['name']"]


def test_errors_are_rankkit_and_value_errors() -> None:
    with pytest.raises(RankkitError):
        from_mapping(Outer, {"name": 1})
    with pytest.raises(ValueError):
        from_mapping(Outer, {"name": 1})


def test_a_long_or_shared_value_is_shown_bounded() -> None:
    shared = ["x"] * 10
    for _ in range(30):  # 10**30 values once expanded; the message must not expand it
        shared = [shared] * 10
    (line,) = problems(Outer, {"name": "x", "flag": shared})
    assert len(line) < 200


def test_validate_fields_gives_direct_construction_the_same_checks() -> None:
    with pytest.raises(ConfigError, match=r"^lora\.rank must be an integer >= 1, got 0$"):
        LoraSettings(rank=0)
    with pytest.raises(ConfigError, match=r"TrainConfig\.lr must be a number > 0, got -1"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16, got 'bfloat16'"):
        RankR1Config(precision="bfloat16")

    @dataclass
    class Checked:
        n: PositiveInt = 1

        def __post_init__(self) -> None:
            validate_fields(self)

    with pytest.raises(ConfigError, match=r"^Checked\.n must be an integer >= 1, got 0$"):
        Checked(n=0)


def test_a_bad_default_is_named_as_such() -> None:
    @dataclass
    class NeedsModel:
        model: NonEmptyStr = ""

    assert problems(NeedsModel, {}, "s.yaml") == [
        "s.yaml: model must be a non-empty string, got '' (the default: give this key a value)"]


# --- the training configs ----------------------------------------------------------------------------------------

TRAIN_ERRORS = [
    ({"lr": -1.0}, "lr must be a number > 0, got -1.0"),
    ({"lr": "fast"}, "lr must be a number > 0, got 'fast'"),
    ({"lr": "5e-4"}, "write 5.0e-4"),
    ({"head_lr": 0}, "head_lr must be a number > 0, got 0"),
    ({"weight_decay": -0.01}, "weight_decay must be a number >= 0"),
    ({"max_grad_norm": 0.0}, "max_grad_norm must be a number > 0"),
    ({"warmup_steps": -10}, "warmup_steps must be an integer >= 0, got -10"),
    ({"epochs": 1.5}, "epochs must be an integer >= 1, got 1.5"),
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"batch_size": -1}, "batch_size must be an integer >= 1, got -1"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be an integer >= 1"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1 or null, got 0"),
    ({"eval_every": -1}, "eval_every must be an integer >= 0 or null"),
    ({"eval_batch_size": 0}, "eval_batch_size must be an integer >= 1"),
    ({"save_every": 0}, "save_every must be an integer >= 1"),
    ({"keep_checkpoints": 0}, "keep_checkpoints must be an integer >= 1"),
    ({"log_every": 0}, "log_every must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer in [0, 4294967295], got -1"),
    ({"seed": "42"}, "seed must be an integer"),
    ({"tune_interpolation": "yes"}, "tune_interpolation must be true or false, got 'yes'"),
    ({"device": "tpu9"}, "device must be one of auto, cpu, cuda, cuda:N, mps, got 'tpu9'"),
    ({"device": "cuda:x"}, "device must be one of auto, cpu, cuda, cuda:N, mps"),
    ({"precision": "bfloat16"}, "precision must be one of auto, fp32, bf16, fp16, got 'bfloat16'"),
    ({"select_metric": "ndgc@10"}, "select_metric 'ndgc@10' is not a metric"),
    ({"output": ""}, "output must be a non-empty string, got ''"),
    ({"model": {"max_length": -5}}, "model.max_length must be an integer >= 8, got -5"),
    ({"model": {"kind": "colbert"}}, "model.kind must be one of cross_encoder, bi_encoder, tsprank, got 'colbert'"),
    ({"model": {"head": "max"}}, "model.head must be one of mean, cls, hf or null, got 'max'"),
    ({"model": {"kind": "bi_encoder", "temperature": 0}}, "model.temperature must be a number > 0 or null, got 0"),
    ({"model": {"kind": "bi_encoder", "head": "cls"}}, "model: head does not apply to kind bi_encoder"),
    ({"model": 5}, "model must be a mapping of options or a non-empty string (short for {name: ...}), got 5"),
    ({"lora": "yes please"}, "lora must be a mapping of options or true/false (short for {enabled: ...}), "
                             "got 'yes please'"),
    ({"lora": {"rank": 0}}, "lora.rank must be an integer >= 1, got 0"),
    ({"lora": {"alpha": 0}}, "lora.alpha must be a number > 0"),
    ({"lora": {"dropout": 1.0}}, "lora.dropout must be a number in [0, 1), got 1.0"),
    ({"lora": {"target_modules": 5}}, "lora.target_modules must be a non-empty list of non-empty strings, got 5"),
    ({"lora": {"target_modules": []}}, "lora.target_modules must be a non-empty list of non-empty strings, got []"),
    ({"lora": {"target_modules": ["query", 5]}}, "lora.target_modules[1] must be a non-empty string, got 5"),
    ({"lora": {"rnak": 4}}, "lora: unknown key 'rnak' (did you mean 'rank'?)"),
    ({"data": {"dev": 2.0}}, "data.dev must be a fraction in (0, 1), a query count >= 1, a dataset id or path, or "
                             "null, got 2.0"),
    ({"data": {"dev": 0}}, "data.dev must be a fraction in (0, 1)"),
    ({"data": {"dev": True}}, "data.dev must be a fraction in (0, 1)"),
    ({"data": {"dev": "1e-1"}}, "data: dev '1e-1' is a string, not a number"),
    ({"data": {"dev_depth": 0}}, "data.dev_depth must be an integer >= 1"),
    ({"data": {"dataset": 5}}, "data.dataset must be a non-empty string, got 5"),
    ({"data": {"groups": {"group_size": 1}}}, "data.groups.group_size must be an integer >= 2, got 1"),
    ({"data": {"groups": {"sampling": "best"}}}, "data.groups.sampling must be one of uniform, top, got 'best'"),
    ({"data": {"groups": {"random_negatives": -1}}}, "data.groups.random_negatives must be an integer >= 0"),
    ({"data": {"groups": {"random_negatives": 8}}}, "data.groups: random_negatives must be in [0, group_size)"),
    ({"data": {"groups": {"min_relevance": 0}}}, "data.groups.min_relevance must be an integer >= 1"),
    ({"data": {"groups": {"negatives_depth": 0}}}, "data.groups.negatives_depth must be an integer >= 1"),
    ({"data": {"groups": {"on_missing_positive": "drop"}}}, "data.groups.on_missing_positive must be one of error, "
                                                            "skip"),
    ({"curriculum": {"heuristic": "kdescor"}}, "curriculum.heuristic must be one of reciprank, normscore, kdescore "
                                               "or null, got 'kdescor' (did you mean 'kdescore'?)"),
    ({"curriculum": {"end_step": 0}}, "curriculum.end_step must be a fraction in (0, 1] or a whole step count > 1"),
    ({"curriculum": {"end_step": 10.5}}, "curriculum: end_step > 1 is an absolute step count"),
    ({"curriculum": {"anti": "yes"}}, "curriculum.anti must be true or false"),
    ({"curriculum": {"form": "listwise"}}, "curriculum.form must be one of auto, pointwise, pairwise"),
    ({"curriculum": {"weighting": "group"}}, "curriculum.weighting must be one of sample, batch"),
    ({"objective": "lambdarank"}, "unknown objective 'lambdarank'"),
    ({"objective": {"name": "margin", "margin": -1}}, "objective (margin).margin must be a number >= 0, got -1"),
    ({"objective": {"name": "softmax", "temperature": "hot"}}, "objective (softmax).temperature must be a number > 0"),
    ({"objective": {"name": "infonce", "in_batch": "no"}}, "objective (infonce).in_batch must be true or false"),
    ({"objective": {"name": "bce", "pos_weight": 0}}, "objective (bce).pos_weight must be 'balanced', a number > 0 "
                                                      "or null, got 0"),
]


@pytest.mark.parametrize("values, expected", TRAIN_ERRORS, ids=[str(v) for v, _ in TRAIN_ERRORS])
def test_train_config_refuses_bad_values_at_load_time(values: dict, expected: str) -> None:
    lines = problems(TrainConfig, values, "train.yaml")
    assert len(lines) == 1 and lines[0].startswith("train.yaml: ") and expected in lines[0], lines


def test_train_config_accepts_good_values() -> None:
    cfg = from_mapping(TrainConfig, {
        "model": "minilm", "lora": False, "lr": 1, "device": "cuda:1", "max_steps": None, "eval_every": 0,
        "data": {"dev": 0.2, "groups": {"sampling": "top"}}, "curriculum": {"heuristic": "reciprank", "end_step": 100},
        "objective": {"name": "bce", "pos_weight": 3}, "select_metric": "recall@100"}, "train.yaml")
    assert cfg.model.name == "minilm" and cfg.model.head == "mean" and not cfg.lora.enabled
    assert cfg.lr == 1.0 and cfg.device == "cuda:1" and cfg.data.dev == 0.2 and cfg.curriculum.end_step == 100
    assert from_mapping(TrainConfig, {"data": {"dev": 5}}).data.dev == 5
    assert from_mapping(TrainConfig, {"data": {"dev": "beir/scifact/dev"}}).data.dev == "beir/scifact/dev"
    assert from_mapping(TrainConfig, {"data": {"dev": None}}).data.dev is None
    assert from_mapping(TrainConfig, {"lora": True}).lora == LoraSettings()



@pytest.mark.parametrize("cls", [TrainConfig, LoraSettings, CurriculumConfig, GroupConfig])
def test_train_config_refuses_an_unknown_attribute_set_from_python(cls: type) -> None:
    # a misplaced setting (cfg.init_from for cfg.model.init_from) once trained from scratch unnoticed
    cfg = cls()
    with pytest.raises(AttributeError):
        cfg.init_from = "models/ce"
    assert cfg == cls()

LLM_ERRORS = [
    (RankR1Config, {"grpo": {"learning_rate": 0}}, "grpo.learning_rate must be a number > 0"),
    (RankR1Config, {"grpo": {"beta": -0.1}}, "grpo.beta must be a number >= 0"),
    (RankR1Config, {"grpo": {"num_generations": 1}}, "grpo.num_generations must be an integer >= 2, got 1"),
    (RankR1Config, {"grpo": {"top_p": 1.5}}, "grpo.top_p must be a number in (0, 1], got 1.5"),
    (RankR1Config, {"grpo": {"top_k": -1}}, "grpo.top_k must be an integer >= 0"),
    (RankR1Config, {"grpo": {"temperature": 0}}, "grpo.temperature must be a number > 0"),
    (RankR1Config, {"grpo": {"loss_type": "ppo"}}, "grpo.loss_type must be one of grpo, dr_grpo, dapo"),
    (RankR1Config, {"grpo": {"scale_rewards": True}}, "grpo.scale_rewards must be one of group, batch, none"),
    (RankR1Config, {"grpo": {"max_time_s": -5}}, "grpo.max_time_s must be a number > 0 or null"),
    (RankR1Config, {"grpo": {"lr_scheduler_type": "cosin"}}, "(did you mean 'cosine'?)"),
    (RankR1Config, {"grpo": {"per_device_train_batch_size": 6}}, "must be a multiple of num_generations (4)"),
    (RankR1Config, {"grpo": {"bf16": True}}, "grpo: unknown key 'bf16'"),
    (RankR1Config, {"reward": {"format_weight": -1}}, "reward.format_weight must be a number >= 0"),
    (RankR1Config, {"data": {"set_size": 1}}, "data.set_size must be an integer >= 2, got 1"),
    (RankR1Config, {"data": {"num_prompts": 0}}, "data.num_prompts must be an integer >= 1 or null"),
    (RankR1Config, {"data": {"max_prompt_tokens": -1}}, "data.max_prompt_tokens must be an integer >= 1"),
    (RankR1Config, {"lora": False}, "lora.enabled: false is not supported for LLM rerankers"),
    (RankR1Config, {"model": ""}, "model must be a non-empty string"),
    (RankR1Config, {"device": "gpu"}, "device must be one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
    (SetwiseSFTConfig, {"sft": {"max_steps": 0}}, "sft.max_steps must be -1 (train num_train_epochs) or a step "
                                                  "count >= 1, got 0"),
    (SetwiseSFTConfig, {"sft": {"num_train_epochs": 0}}, "sft.num_train_epochs must be a number > 0"),
    (SetwiseSFTConfig, {"sft": {"max_length": 0}}, "sft.max_length must be an integer >= 1"),
    (SetwiseSFTConfig, {"sft": {"logging_steps": 1.5}}, "sft.logging_steps must be an integer >= 1, got 1.5"),
]


@pytest.mark.parametrize("cls, values, expected", LLM_ERRORS, ids=[str(v) for _, v, _ in LLM_ERRORS])
def test_llm_configs_refuse_bad_values_at_load_time(cls: type, values: dict, expected: str) -> None:
    lines = problems(cls, values, "llm.yaml")
    assert len(lines) == 1 and lines[0].startswith("llm.yaml: ") and expected in lines[0], lines


def test_a_partial_section_keeps_the_defaults_of_its_field() -> None:
    cfg = from_mapping(RankR1Config, {"lora": {"rank": 8}})
    assert cfg.lora.rank == 8 and cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert from_mapping(TrainConfig, {"lora": {"rank": 8}}).lora.target_modules == ["query", "key", "value", "dense"]
    assert from_mapping(SetwiseSFTConfig, {"sft": {"max_steps": 5}}).sft.max_steps == 5


def test_components_validate_when_built_directly() -> None:
    with pytest.raises(ValueError, match="group_size"):
        GroupConfig(group_size=1)
    with pytest.raises(ValueError, match="anti"):
        CurriculumConfig(anti="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"objective \(infonce\)\.temperature must be a number > 0, got 0"):
        objective_spec({"name": "infonce", "temperature": 0})


# --- overrides and load_config -----------------------------------------------------------------------------------


def test_overrides_copy_sections_and_expand_shorthands() -> None:
    shared = {"rank": 4}
    values = {"lora": shared, "model": "minilm"}
    out = apply_overrides(values, {"lora.rank": 8, "model.max_length": 64, "data.groups.group_size": 4}, TrainConfig)
    assert out["lora"] == {"rank": 8} and shared == {"rank": 4}
    assert out["model"] == {"name": "minilm", "max_length": 64} and out["data"] == {"groups": {"group_size": 4}}
    with pytest.raises(ConfigError, match=r"cannot set objective\.margin: objective is 'softmax', not a mapping"):
        apply_overrides({"objective": "softmax"}, {"objective.margin": 1}, TrainConfig, "t.yaml")


def test_load_config_validates_overrides_and_checks_files(tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 1.0 x\n")
    path = tmp_path / "t.yaml"
    path.write_text("model: minilm\ndata: {first_stage: run.trec, dev: null}\nlr: 1.0e-3\n")
    cfg, base = load_config(TrainConfig, path, {"model.max_length": 64, "lora.rank": 8})
    assert base == tmp_path and cfg.model.max_length == 64 and cfg.lora.rank == 8 and cfg.lr == 1e-3
    with pytest.raises(ConfigError, match=r"t\.yaml: lora\.rank must be an integer >= 1, got 0"):
        load_config(TrainConfig, path, {"lora.rank": 0})
    path.write_text("data: {first_stage: missing.trec}\n")
    with pytest.raises(ConfigError, match=r"t\.yaml: data\.first_stage: .*missing\.trec does not exist"):
        load_train_config(path)
    path.write_text("data: {first_stage: run.trec, qrels: nope.tsv}\n")
    with pytest.raises(ConfigError, match=r"data\.qrels: .*nope\.tsv does not exist"):
        load_train_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"t\.yaml: expected a mapping of options, got list"):
        load_train_config(path)
    path.write_text("")
    with pytest.raises(ConfigError, match=r"data\.first_stage: .*bm25\.yaml does not exist"):
        load_train_config(path)  # an empty file is all defaults; the default first stage is not beside it


def test_the_shipped_training_configs_load() -> None:
    assert load_train_config(ROOT / "pipelines" / "train_ce_scifact.yaml")[0].lr == 5e-4
    assert load_train_config(ROOT / "pipelines" / "train_bi_scifact.yaml")[0].model.kind == "bi_encoder"
    assert load_config(RankR1Config, ROOT / "pipelines" / "rank_r1_grpo.yaml")[0].grpo.max_time_s == 1800.0
    assert load_config(SetwiseSFTConfig, ROOT / "pipelines" / "setwise_sft.yaml")[0].sft.num_train_epochs == 1.0


def test_reading_a_training_config_does_not_import_torch() -> None:
    code = ("import sys, rankkit.cli, rankkit.cli_train, rankkit.train.config, rankkit.train.llm_config; "
            "from rankkit.config import from_mapping; from rankkit.train.config import TrainConfig; "
            "from_mapping(TrainConfig, {'objective': 'margin', 'curriculum': {'heuristic': 'kdescore'}}); "
            "print(sorted(m for m in ('torch', 'transformers', 'pyserini', 'faiss', 'ranx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- YAML bounds -------------------------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def test_yaml_files_that_are_not_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="is a folder, not a YAML file"):
        load_yaml(tmp_path)
    bad = write(tmp_path, "latin1.yaml", b"lr: 1.0\nname: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml:2: not valid UTF-8 \(byte b'\\xe9' at byte offset 17\)"):
        load_yaml(bad)
    assert load_yaml(write(tmp_path, "bom.yaml", "\ufefflr: 1.0\n".encode())) == {"lr": 1.0}
    with pytest.raises(ConfigError, match=r"dup\.yaml:3: duplicate key 'lr' \(first given on line 1\)"):
        load_yaml(write(tmp_path, "dup.yaml", "lr: 1.0\nepochs: 2\nlr: 2.0\n"))
    with pytest.raises(ConfigError, match=r"ctl\.yaml:2: invalid YAML: unacceptable character"):
        load_yaml(write(tmp_path, "ctl.yaml", "a: 1\nb: x\x00y\n"))
    with pytest.raises(ConfigError, match=r"syntax\.yaml:\d+: invalid YAML"):
        load_yaml(write(tmp_path, "syntax.yaml", "a: [1, 2\n"))
    assert load_yaml(write(tmp_path, "empty.yaml", "")) is None


def test_yaml_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rankkit.yaml_io

    monkeypatch.setattr(rankkit.yaml_io, "MAX_YAML_BYTES", 100)
    with pytest.raises(ConfigError, match="big.yaml: larger than"):
        load_yaml(write(tmp_path, "big.yaml", "a: " + "x" * 200 + "\n"))


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"flow\.yaml:1: YAML nested deeper than 100 levels"):
        load_yaml(write(tmp_path, "flow.yaml", "a: " + "[" * 3000 + "]" * 3000 + "\n"))
    block = "".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v\n"
    with pytest.raises(ConfigError, match=r"block\.yaml:\d+: YAML nested deeper than 100 levels"):
        load_yaml(write(tmp_path, "block.yaml", block))
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 120))
    with pytest.raises(ConfigError, match=r"chain\.yaml: nested deeper than 100 levels"):
        load_yaml(write(tmp_path, "chain.yaml", chain))
    assert load_yaml(write(tmp_path, "ok.yaml", "a: " + "[" * 50 + "]" * 50 + "\n"))


def test_alias_bombs_are_refused_before_anything_expands_them(tmp_path: Path) -> None:
    names = "abcdefghij"
    seq = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{names[i]}: &{names[i]} [{', '.join([f'*{names[i - 1]}'] * 10)}]\n" for i in range(1, 10))
    with pytest.raises(ConfigError, match=r"seq\.yaml: expands to more than 1,000,000 values \(nested aliases\?\)"):
        load_yaml(write(tmp_path, "seq.yaml", seq))
    merge = "a: &a {" + ", ".join(f"k{i}: {i}" for i in range(10)) + "}\n" + "".join(
        f"{names[i]}: &{names[i]}\n  <<: [{', '.join([f'*{names[i - 1]}'] * 10)}]\n" for i in range(1, 10))
    with pytest.raises(ConfigError, match=r"merge\.yaml:\d+: merge keys \(<<\) copy in more than 1,000,000 entries"):
        load_yaml(write(tmp_path, "merge.yaml", merge))
    with pytest.raises(ConfigError, match="recursive structure"):
        load_yaml(write(tmp_path, "self.yaml", "a: &a [1, *a]\n"))
    # ordinary anchors and merge keys still work
    ok = load_yaml(write(tmp_path, "ok.yaml", "base: &b {a: 1, c: 3}\nx:\n  <<: *b\n  a: 2\ny: *b\n"))
    assert ok == {"base": {"a": 1, "c": 3}, "x": {"a": 2, "c": 3}, "y": {"a": 1, "c": 3}}


def test_check_structure_and_parse_yaml() -> None:
    shared: Any = [1]
    for _ in range(17):
        shared = [shared, shared]
    check_structure(shared, "x")  # about 400,000 values once expanded: within the default limit, not a small one
    with pytest.raises(ConfigError, match="x: expands to more than 1,000 values"):
        check_structure(shared, "x", max_nodes=1000)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ConfigError, match="recursive"):
        check_structure({"a": loop}, "y")
    assert parse_yaml("5e-4", "--set lr") == "5e-4" and parse_yaml("{rank: 8}") == {"rank": 8}
    with pytest.raises(ConfigError, match=r"--set lora:1: invalid YAML"):
        parse_yaml("{rank: 8", "--set lora")


def test_every_shipped_yaml_loads() -> None:
    files = [p for p in ROOT.glob("**/*.yaml") if ".venv" not in p.parts and "node_modules" not in p.parts]
    assert files
    for path in files:
        load_yaml(path)


def test_dataclass_fields_of_the_training_configs_are_all_typed() -> None:
    """Every field of the training configs has an annotation from_mapping validates (``objective`` checks itself)."""
    from rankkit.config import _spec
    from rankkit.train import llm_config
    from rankkit.train.config import DataSettings, ModelSettings

    classes = [TrainConfig, ModelSettings, LoraSettings, DataSettings, GroupConfig, CurriculumConfig,
               llm_config.SetwiseDataSettings, llm_config.RewardSettings, llm_config.GRPOSettings,
               llm_config.SFTSettings, RankR1Config, SetwiseSFTConfig]
    for cls in classes:
        spec = _spec(cls)
        unchecked = set(spec.fields) - spec.validated - set(spec.nested) - {"objective"}
        assert not unchecked, (cls.__name__, unchecked)
        assert dataclasses.is_dataclass(cls)
    assert os.environ.get("RANKKIT_CACHE_DIR")  # conftest isolates caches; nothing here writes there


def test_the_precision_type_matches_rankkit_precision() -> None:
    from typing import get_args

    from rankkit.config import Precision
    from rankkit.precision import PRECISIONS

    assert get_args(Precision) == PRECISIONS
