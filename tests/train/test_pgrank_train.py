"""Policy-gradient training plumbing: candidate-set groups, chunked forward passes, both scorers, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_loop import tiny_config

from rankkit.data import load_dataset
from rankkit.errors import ConfigError, DatasetError
from rankkit.train.config import load_train_config
from rankkit.train.groups import GroupConfig, build_groups
from rankkit.train.loop import train_reranker
from rankkit.types import Run

ROOT = Path(__file__).resolve().parents[2]
PG = {"name": "plackett_luce_pg", "samples": 4}


def test_candidate_groups_are_the_first_stage_top_with_every_positive(train_folder: Path) -> None:
    ds = load_dataset(str(train_folder), "train")
    run = Run.from_trec(train_folder / "run.trec")
    groups = build_groups(ds, run, GroupConfig(group_size=10, mode="candidates"), seed=1)
    assert len(groups) == len([q for q in ds.queries if q.qid in ds.qrels])
    for g in groups:
        ids = [d.docid for d in g.docs]
        positives = {d for d, grade in ds.qrels[g.query.qid].items() if grade >= 1}
        assert len(ids) == 10 == len(set(ids)) and positives <= set(ids)
        assert [y > 0 for y in g.labels] == [d in positives for d in ids]
        top = [d for d, _ in run.ranked(g.query.qid)[:10]]
        assert [d for d in ids if d not in positives] == [d for d in top if d not in positives][:10 - len(positives)]


def test_candidate_groups_refuse_a_query_without_candidates(train_folder: Path) -> None:
    ds = load_dataset(str(train_folder), "train")
    run = Run.from_trec(train_folder / "run.trec")
    dropped = Run({q: run[q] for q in list(run)[1:]})
    with pytest.raises(DatasetError, match="has no first-stage candidates"):
        build_groups(ds, dropped, GroupConfig(group_size=10, mode="candidates"))
    with pytest.raises(ValueError, match="random_negatives does not apply to mode: candidates"):
        GroupConfig(group_size=10, mode="candidates", random_negatives=2)


@pytest.fixture(scope="module")
def no_dropout_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rankkit.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    path = tmp_path_factory.mktemp("models") / "bert-no-dropout"
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("kind", ["cross_encoder", "bi_encoder"])
def test_chunked_forward_gives_the_whole_batch_gradient(no_dropout_bert: Path, train_folder: Path, tmp_path: Path,
                                                        kind: str) -> None:
    from rankkit.train.data import load_training_data
    from rankkit.train.loop import _Loop

    cfg = tiny_config(no_dropout_bert, train_folder, tmp_path / kind, objective=PG, max_steps=2, eval_every=0,
                      **{"model.kind": kind, "lora.dropout": 0.0,
                         "data.groups": {"group_size": 12, "mode": "candidates"}})
    loop = _Loop(cfg, load_training_data(cfg, train_folder), tmp_path / kind)
    batch = next(iter(loop.loader(0)))
    labels = batch["labels"]
    params = [p for p in loop.model.parameters() if p.requires_grad]

    def gradients(chunk: int | None) -> list[torch.Tensor]:
        loop.opt.zero_grad()
        torch.manual_seed(0)  # the same sampled rankings on both sides
        if chunk is None:
            scores, _ = loop.scorer.forward(loop.model, batch, loop.acc.device)
            loop.objective(scores, labels).loss.backward()
        else:
            loop.chunked_pass(batch, labels, chunk)
        return [p.grad.detach().clone() for p in params]

    whole, chunked = gradients(None), gradients(7)
    assert any(g.abs().sum() > 0 for g in whole)
    for a, b in zip(whole, chunked):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-4)


def test_pg_trains_both_scorers_end_to_end(tiny_bert: Path, train_folder: Path, tmp_path: Path) -> None:
    for kind in ("cross_encoder", "bi_encoder"):
        cfg = tiny_config(tiny_bert, train_folder, tmp_path / kind, objective=PG, max_steps=2, eval_every=2,
                          forward_chunk=16, **{"model.kind": kind,
                                               "data.groups": {"group_size": 12, "mode": "candidates"}})
        result = train_reranker(cfg)
        logged = result.history[-2] if "reward" not in result.history[-1] else result.history[-1]
        assert {"reward", "reward_greedy", "advantage", "grad_var", "grad_var_no_baseline"} <= set(logged)
        assert result.best_metric is not None and (result.output / "train_card.json").is_file()


def test_forward_chunk_is_refused_with_in_batch_negatives(tiny_bert: Path, train_folder: Path,
                                                          tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="forward_chunk does not apply to objective infonce"):
        tiny_config(tiny_bert, train_folder, tmp_path / "x", objective="infonce", forward_chunk=8,
                    **{"model.kind": "bi_encoder"})
    cfg = tiny_config(tiny_bert, train_folder, tmp_path / "x", objective={"name": "infonce", "in_batch": False},
                      forward_chunk=8, **{"model.kind": "bi_encoder"})
    assert cfg.forward_chunk == 8


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("pgrank_*.yaml")), ids=lambda p: p.name)
def test_pgrank_configs_load(path: Path) -> None:
    cfg, _ = load_train_config(path)
    assert cfg.objective["name"] == "plackett_luce_pg" and cfg.data.groups.mode == "candidates"
