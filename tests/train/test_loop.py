"""Reranker training on a tiny model and a SciFact-train slice: outputs, dev selection, curriculum, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rankkit.config import from_mapping
from rankkit.errors import ConfigError
from rankkit.rerank.ce_model import CrossEncoderModel
from rankkit.train.config import TrainConfig
from rankkit.train.trainer import train_reranker


def tiny_config(tiny_bert: Path, folder: Path, output: Path, **extra: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "model": str(tiny_bert), "output": str(output), "max_length": 64, "batch_size": 2, "max_steps": 6,
        "eval_every": 3, "save_every": 2, "log_every": 1, "warmup_steps": 1, "lr": 1e-3,
        "lora": {"rank": 4, "alpha": 8},
        "data": {"dataset": str(folder), "split": "train", "first_stage": str(folder / "run.trec"),
                 "dev": 4, "dev_depth": 10, "groups": {"group_size": 4, "negatives_depth": 20}},
    }
    for key, value in extra.items():
        node = values
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return from_mapping(TrainConfig, values, "test")


def test_training_writes_model_card_dev_selection_and_interpolation(tiny_bert: Path, train_folder: Path,
                                                                    tmp_path: Path) -> None:
    cfg = tiny_config(tiny_bert, train_folder, tmp_path / "ce")
    result = train_reranker(cfg)
    out = result.output
    assert result.steps == 6 and (out / "adapter").is_dir() and (out / "head.safetensors").is_file()
    card = json.loads((out / "train_card.json").read_text())
    assert card["steps"] == 6 and card["seed"] == 42 and "versions" in card and card["wall_time_s"] > 0
    dev_steps = [h["step"] for h in card["history"] if "dev_ndcg@10" in h]
    assert dev_steps == [3, 6]
    assert [h["step"] for h in card["history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    meta = json.loads((out / "rankkit_ce.json").read_text())
    assert 0.0 <= meta["interpolation"]["weight"] <= 1.0 and meta["interpolation"]["dev_queries"] == 4
    assert meta["dev"][cfg.select_metric] == pytest.approx(max(
        h["dev_ndcg@10"] for h in card["history"] if "dev_ndcg@10" in h), abs=1e-6)
    ckpts = sorted(p.name for p in (tmp_path / "ce.checkpoints").glob("step-*"))
    assert ckpts == ["step-4", "step-6"]  # keep_checkpoints = 2
    # the saved model is the best dev checkpoint, and it differs from the untrained start
    trained = CrossEncoderModel.load(str(out)).score(["q a"], ["doc b"], device="cpu")
    fresh = CrossEncoderModel.new(str(tiny_bert), head="mean", max_length=64, seed=42).score(
        ["q a"], ["doc b"], device="cpu")
    assert not np.allclose(trained, fresh)


@pytest.mark.parametrize("objective,heuristic,anti", [("bce", "reciprank", False), ("ranknet", "kdescore", True),
                                                      ("softmax", "normscore", False)])
def test_objectives_with_curricula_train(tiny_bert: Path, train_folder: Path, tmp_path: Path, objective: str,
                                         heuristic: str, anti: bool) -> None:
    cfg = tiny_config(tiny_bert, train_folder, tmp_path / "ce", objective=objective, max_steps=3, eval_every=0,
                      **{"curriculum": {"heuristic": heuristic, "end_step": 2, "anti": anti}})
    result = train_reranker(cfg)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert json.loads((result.output / "rankkit_ce.json").read_text())["train"]["curriculum"]["heuristic"] == heuristic


def test_full_fine_tuning_and_hf_head(tiny_bert: Path, train_folder: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_bert, train_folder, tmp_path / "ce", head="hf", max_steps=2, eval_every=0,
                      **{"lora": {"enabled": False}})
    out = train_reranker(cfg).output
    assert not (out / "adapter").exists() and (out / "config.json").is_file()
    assert CrossEncoderModel.load(str(out)).head == "hf"


def test_bad_training_configs(tiny_bert: Path, train_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown objective 'lambda'"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", objective="lambda")
    cfg = tiny_config(tiny_bert, train_folder, tmp_path / "x", **{"data.queries": str(train_folder / "queries.jsonl"),
                                                                  "data.corpus": str(train_folder / "corpus.jsonl")})
    with pytest.raises(ConfigError, match="data.qrels is missing"):
        train_reranker(cfg)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        train_reranker(tiny_config(tiny_bert, train_folder, tmp_path / "occupied"))
    with pytest.raises(ConfigError, match=r"test\.lora: rank must be >= 1"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", **{"lora.rank": 0})
