"""The training loop on tiny models and a SciFact-train slice: both scorers, dev selection, curricula, errors."""

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
from rankkit.retrieve.bi_encoder import BiEncoderModel
from rankkit.train.loop import train_reranker


def tiny_config(tiny_bert: Path, folder: Path, output: Path, **extra: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "model": {"name": str(tiny_bert), "max_length": 64}, "output": str(output), "batch_size": 2, "max_steps": 6,
        "eval_every": 3, "save_every": 2, "log_every": 1, "warmup_steps": 1, "lr": 1e-3,
        "lora": {"rank": 4, "alpha": 8},
        "data": {"dataset": str(folder), "split": "train", "first_stage": str(folder / "run.trec"),
                 "dev": 4, "dev_depth": 10, "groups": {"group_size": 4, "negatives_depth": 20}},
    }
    for key, value in extra.items():
        node = values
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
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
    cfg = tiny_config(tiny_bert, train_folder, tmp_path / "ce", max_steps=2, eval_every=0,
                      **{"model.head": "hf", "lora": {"enabled": False}})
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
    with pytest.raises(ConfigError, match=r"test\.lora\.rank must be an integer >= 1, got 0"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", **{"lora.rank": 0})


def test_bi_encoder_trains_with_infonce_saves_and_loads_in_the_dense_stage(tiny_bert: Path, train_folder: Path,
                                                                          tmp_path: Path) -> None:
    import rankkit
    from rankkit.retrieve.dense import Dense

    cfg = tiny_config(tiny_bert, train_folder, tmp_path / "bi", objective={"name": "infonce"},
                      **{"model.kind": "bi_encoder", "model.learn_temperature": True, "eval_every": 3})
    result = train_reranker(cfg)
    out = result.output
    assert (out / "adapter").is_dir() and (out / "rankkit_bi.json").is_file() and not (out / "head.safetensors").exists()
    card = json.loads((out / "train_card.json").read_text())
    logged = [h for h in card["history"] if "loss" in h]
    assert len(logged) == 6 and all("top1" in h and h["candidates"] == 8.0 for h in logged)  # 2 groups x 4 docs
    assert [h["step"] for h in card["history"] if "dev_ndcg@10" in h] == [3, 6]
    assert card["interpolation"] is None  # dense scores are not interpolated
    model = BiEncoderModel.load(str(out))
    assert model.temperature != pytest.approx(0.05)  # learned
    ds = rankkit.load_dataset(str(train_folder), "train")
    # the trained folder works as a FAISS retriever and as a reranker, with the same scores
    dense = Dense(ds, model=str(out), hits=5, device="cpu", show_progress=False)
    retrieved = dense(ds.queries[:3])
    reranked = Dense(ds, model=str(out), rerank="always", device="cpu", show_progress=False)(ds.queries[:3], retrieved)
    for q in retrieved:
        assert list(retrieved[q]) == list(reranked[q])
        np.testing.assert_allclose(list(retrieved[q].values()), list(reranked[q].values()), rtol=1e-5)
    vec = model.encode(["a query"], device="cpu")
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, rtol=1e-5)


def test_bi_encoder_index_cache_is_keyed_by_adapter_content(tiny_bert: Path, train_folder: Path,
                                                            tmp_path: Path) -> None:
    import rankkit
    from rankkit.retrieve.dense import Dense

    ds = rankkit.load_dataset(str(train_folder), "train")
    keys = []
    for seed in (1, 2):
        cfg = tiny_config(tiny_bert, train_folder, tmp_path / f"bi{seed}", max_steps=1, eval_every=0, seed=seed,
                          objective="infonce", **{"model.kind": "bi_encoder"})
        keys.append(Dense(ds, model=str(train_reranker(cfg).output), device="cpu").index_key())
    assert keys[0] != keys[1]


def test_kind_specific_options_and_wrong_folders_are_clear_errors(tiny_bert: Path, train_folder: Path,
                                                                  tmp_path: Path) -> None:
    import rankkit
    from rankkit.rerank.cross_encoder import CrossEncoder
    from rankkit.rerank.setwise import Setwise
    from rankkit.retrieve.dense import Dense
    from rankkit.types import Run

    with pytest.raises(ConfigError, match=r"test\.model: head does not apply to kind bi_encoder"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", **{"model.kind": "bi_encoder", "model.head": "cls"})
    with pytest.raises(ConfigError, match=r"test\.model: temperature does not apply to kind cross_encoder"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", **{"model.temperature": 0.1})
    with pytest.raises(ConfigError, match=r"test\.model\.kind must be one of cross_encoder, bi_encoder, tsprank, got 'colbert'"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", **{"model.kind": "colbert"})
    with pytest.raises(ConfigError, match=r"objective \(infonce\): unknown key 'temp'"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", objective={"name": "infonce", "temp": 0.1})
    ce = train_reranker(tiny_config(tiny_bert, train_folder, tmp_path / "ce", max_steps=1, eval_every=0)).output
    bi = train_reranker(tiny_config(tiny_bert, train_folder, tmp_path / "bi", max_steps=1, eval_every=0,
                                    objective="infonce", **{"model.kind": "bi_encoder"})).output
    ds = rankkit.load_dataset(str(train_folder), "train")
    run = Run({ds.queries[0].qid: {ds.docs_iter().__next__().docid: 1.0}})
    with pytest.raises(ConfigError, match="holds a bi-encoder.*load it with the dense stage"):
        CrossEncoder(ds, model=str(bi), device="cpu")(ds.queries[:1], run)
    with pytest.raises(ConfigError, match="holds a cross-encoder.*load it with the cross_encoder stage"):
        Dense(ds, model=str(ce), device="cpu").index_key()
    with pytest.raises(ConfigError, match="holds a bi-encoder.*load it with the dense stage"):
        Setwise(ds, adapter=str(bi))
    # training into the other kind's folder is refused before any work
    with pytest.raises(ConfigError, match="is not a rankkit bi_encoder folder; refusing to overwrite"):
        train_reranker(tiny_config(tiny_bert, train_folder, ce, objective="infonce", **{"model.kind": "bi_encoder"}))
