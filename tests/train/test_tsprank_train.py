"""TSPRank through the training loop on a tiny encoder and a SciFact-train slice: every objective, save/load, the stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rankkit.config import from_mapping
from rankkit.data import load_dataset
from rankkit.errors import ConfigError
from rankkit.rerank.tsp_model import TSPRankModel
from rankkit.rerank.tsprank import TSPRank
from rankkit.train.config import TrainConfig
from rankkit.train.loop import train_reranker
from rankkit.types import Run


def tsp_config(encoder: Path, folder: Path, output: Path, objective: Any = "tsp_hybrid",
               head: str = "bilinear", **extra: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "model": {"kind": "tsprank", "name": str(encoder), "max_length": 64,
                  "tsp": {"head": head, "dim": 16, "features": ["product", "cosine", "score", "rank"]}},
        "output": str(output), "objective": objective, "lora": False, "batch_size": 4, "max_steps": 4,
        "eval_every": 2, "save_every": 2, "log_every": 1, "warmup_steps": 1, "lr": 1e-2, "precision": "fp32",
        "data": {"dataset": str(folder), "split": "train", "first_stage": str(folder / "run.trec"), "dev": 4,
                 "dev_depth": 8, "groups": {"mode": "candidates", "group_size": 8}},
    }
    values.update(extra)
    return from_mapping(TrainConfig, values, "test")


@pytest.mark.parametrize("objective,head", [("tsp_hybrid", "bilinear"), ("tsp_local", "deep"),
                                            ({"name": "tsp_margin", "decoder": "milp"}, "separate"),
                                            ("ranknet", "pointwise")])
def test_tsprank_trains_saves_and_reloads_with_identical_scores(tiny_bert: Path, train_folder: Path, tmp_path: Path,
                                                                objective: Any, head: str) -> None:
    cfg = tsp_config(tiny_bert, train_folder, tmp_path / "tsp", objective, head)
    result = train_reranker(cfg, show_progress=False)
    assert result.steps == 4 and result.best_metric is not None
    logged = [h for h in result.history if "loss" in h]
    assert logged and all(np.isfinite(h["loss"]) for h in logged)
    if objective == "tsp_hybrid":  # local and global batches alternate
        assert {h["global"] for h in logged} == {0.0, 1.0}
    model = TSPRankModel.load(str(result.output))
    assert model.settings.head == head and model.meta["train"]["kind"] == "tsprank"
    x = torch.randn(2, 5, model.in_dim)
    again = TSPRankModel.load(str(result.output))
    torch.testing.assert_close(model(x), again(x), rtol=0, atol=0)
    # the stage reranks the dev lists as training's evaluation did
    ds = load_dataset(str(train_folder), "train")
    run = Run.from_trec(train_folder / "run.trec")
    out = TSPRank(ds, model=str(result.output), depth=8, show_progress=False)(ds.queries[:3], run)
    for q in ds.queries[:3]:
        top = [d for d, _ in run.ranked(q.qid)]
        ranked = [d for d, _ in out.ranked(q.qid)]
        assert sorted(ranked[:8]) == sorted(top[:8]) and ranked[8:] == top[8:]


def test_tsprank_config_errors(tiny_bert: Path, train_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set lora: false"):
        tsp_config(tiny_bert, train_folder, tmp_path / "x", lora=True)
    with pytest.raises(ConfigError, match="needs a pairwise head"):
        tsp_config(tiny_bert, train_folder, tmp_path / "x", "tsp_local", "pointwise")
    with pytest.raises(ConfigError, match="use objective tsp_local"):
        tsp_config(tiny_bert, train_folder, tmp_path / "x", "softmax", "bilinear")
    with pytest.raises(ConfigError, match="forward_chunk does not apply"):
        tsp_config(tiny_bert, train_folder, tmp_path / "x", forward_chunk=4)
    with pytest.raises(ConfigError, match="features"):
        tsp_config(tiny_bert, train_folder, tmp_path / "x", model={"kind": "tsprank", "tsp": {"features": ["bm25"]}})
    with pytest.raises(ConfigError, match="not a TSPRank model folder"):
        TSPRankModel.load(str(tmp_path))


def test_dev_evaluation_decodes_with_the_configured_solver(tiny_bert: Path, train_folder: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    cfg = tsp_config(tiny_bert, train_folder, tmp_path / "tsp", "tsp_local")
    cfg.model.tsp.decoder = "heuristic"  # type: ignore[union-attr]
    with caplog.at_level("INFO", logger="rankkit.rerank.tsprank"):
        train_reranker(cfg, show_progress=False)
    used = [r.getMessage() for r in caplog.records if "decoders used" in r.getMessage()]
    assert used and all("'heuristic" in m and "held_karp" not in m for m in used)
