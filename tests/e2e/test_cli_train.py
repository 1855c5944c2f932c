"""End-to-end: `rankkit train reranker` (killed and resumed), `rankkit adapters squeeze|merge`, bad configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rankkit.rerank.ce_model import CrossEncoderModel

RANKKIT = [sys.executable, "-m", "rankkit.cli"]
ROOT = Path(__file__).resolve().parents[2]


def rk(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*RANKKIT, *args], capture_output=True, text=True, cwd=ROOT, env=os.environ.copy())
    if check and proc.returncode != 0:
        raise AssertionError(f"rankkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def config(tiny_bert: Path, train_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "train.yaml"
    path.write_text(f"""
model: {{name: {tiny_bert}, max_length: 64}}
output: models/ce
batch_size: 2
max_steps: 60
epochs: 1
save_every: 2
eval_every: 0
log_every: 5
warmup_steps: 2
lr: 1.0e-3
lora: {{rank: 4, alpha: 8, dropout: 0.1}}
data:
  dataset: {train_folder}
  split: train
  first_stage: {train_folder / 'run.trec'}
  dev: null
  groups: {{group_size: 4, negatives_depth: 20}}
""")
    return path


def _scores(folder: Path) -> np.ndarray:
    return CrossEncoderModel.load(str(folder)).score(["tides and the moon", "p53"], ["gravity of the moon", "gene"],
                                                      device="cpu", precision="fp32")


def test_killed_training_resumes_from_its_last_checkpoint(config: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    rk("train", "reranker", "--config", str(config), "--output", str(full), "--set", "max_steps=12")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*RANKKIT, "train", "reranker", "--config", str(config), "--output", str(killed),
                             "--set", "max_steps=12"], cwd=ROOT, env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "killed.checkpoints"
    deadline = time.time() + 300
    while not list(ckpts.glob("step-*/trainer_state.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert not (killed / "rankkit_ce.json").exists()  # nothing half-written under the final name
    done = sorted(int(p.parent.name.split("-")[1]) for p in ckpts.glob("step-*/trainer_state.json"))
    assert done and done[-1] < 12
    resumed = rk("-v", "train", "reranker", "--config", str(config), "--output", str(killed), "--set", "max_steps=12",
                 "--resume")
    assert "resuming from" in resumed.stderr and "steps: 12" in resumed.stdout
    # data order, optimiser, scheduler and RNG state are restored: the same model as an uninterrupted run
    np.testing.assert_allclose(_scores(killed), _scores(full), atol=1e-6)
    card = json.loads((killed / "train_card.json").read_text())
    assert [h["step"] for h in card["history"] if "loss" in h] == [5, 10, 12]


def test_squeeze_and_merge_commands(config: Path, tmp_path: Path) -> None:
    model = tmp_path / "ce"
    rk("train", "reranker", "--config", str(config), "--output", str(model), "--set", "max_steps=4")
    squeezed = tmp_path / "ce-r2"
    out = rk("adapters", "squeeze", str(model), "--rank", "2", "--output", str(squeezed))
    assert "LoRA parameters" in out.stdout
    cfg = json.loads((squeezed / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 2 and _scores(squeezed).shape == (2,)
    continued = tmp_path / "ce-r2-cont"
    out = rk("adapters", "squeeze", str(model), "--rank", "2", "--output", str(continued),
             "--continue-config", str(config), "--continue-steps", "2")
    assert "continued 2 steps" in out.stdout
    assert json.loads((continued / "adapter" / "adapter_config.json").read_text())["r"] == 2
    assert not np.allclose(_scores(continued), _scores(squeezed))
    merged = tmp_path / "ce-merged"
    rk("adapters", "merge", str(model), "--output", str(merged))
    np.testing.assert_allclose(_scores(merged), _scores(model), atol=1e-5)
    again = rk("adapters", "squeeze", str(model), "--rank", "2", "--output", str(squeezed), check=False)
    assert again.returncode == 2 and "exists" in again.stderr


def test_bad_train_configs_fail_with_one_line(config: Path, tmp_path: Path) -> None:
    bad = rk("train", "reranker", "--config", str(config), "--set", "objective=lambdarank", check=False)
    assert bad.returncode == 2 and "unknown objective 'lambdarank'" in bad.stderr
    bad = rk("train", "reranker", "--config", str(config), "--set", "lora.rnak=4", check=False)
    assert bad.returncode == 2 and "unknown key 'rnak' (did you mean 'rank'?)" in bad.stderr
    bad = rk("train", "reranker", "--config", str(tmp_path / "missing.yaml"), check=False)
    assert bad.returncode == 2 and "file not found" in bad.stderr
    bad = rk("train", "reranker", "--config", str(config), "--set", "model.kind=bi_encoder", "--set", "model.head=cls",
             check=False)
    assert bad.returncode == 2 and "model: head does not apply to kind bi_encoder" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = rk("train", "reranker", "--config", str(config), "--set", "objective={name: margin, margn: 1}", check=False)
    assert bad.returncode == 2 and "unknown key 'margn' (did you mean 'margin'?)" in bad.stderr


def test_pgrank_config_trains_a_bi_encoder_from_the_cli(tiny_bert: Path, train_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "pg-bi"
    sets = {"model.name": str(tiny_bert), "model.max_length": 64, "data.dataset": str(train_folder),
            "data.split": "train", "data.first_stage": str(train_folder / "run.trec"), "data.dev": "null",
            "data.groups.group_size": 12, "max_steps": 2, "lora.rank": 4, "lora.alpha": 8, "forward_chunk": 8,
            "objective.samples": 4}
    args = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    proc = rk("train", "reranker", "--config", str(ROOT / "pipelines" / "pgrank_bi_scifact.yaml"), "--quiet",
              "--output", str(out), *args)
    assert "%|" not in proc.stderr and "it/s" not in proc.stderr, proc.stderr  # --quiet: no progress bar at all
    card = json.loads((out / "train_card.json").read_text())
    assert card["steps"] == 2 and card["config"]["objective"]["name"] == "plackett_luce_pg"
    assert {"reward", "grad_var", "grad_var_no_baseline"} <= set(card["history"][-1])
    bad = rk("train", "reranker", "--config", str(ROOT / "pipelines" / "pgrank_bi_scifact.yaml"), *args,
             "--set", "objective.samples=1", check=False)
    assert bad.returncode == 2 and "samples must be >= 2 with the leave-one-out baseline" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def llm_config(tiny_llm: Path, train_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg-llm") / "llm.yaml"
    path.write_text(f"""
model: {tiny_llm}
data:
  dataset: {train_folder}
  split: train
  first_stage: {train_folder / 'run.trec'}
  set_size: 3
  num_prompts: 4
  passage_tokens: 16
lora: {{rank: 4, alpha: 8, target_modules: [q_proj, v_proj]}}
""")
    return path


def test_train_grpo_then_rerank_with_the_adapter(llm_config: Path, train_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "r1"
    proc = rk("train", "grpo", "--config", str(llm_config), "--output", str(out), "--set", "prefix=<think>",
              "--set", "grpo.max_steps=2", "--set", "grpo.num_generations=2", "--set",
              "grpo.per_device_train_batch_size=4", "--set", "grpo.max_completion_length=8", "--set",
              "reward.format_weight=0.5")
    assert "steps: 2" in proc.stdout
    assert (out / "adapter_config.json").is_file() and (out / "template.toml").is_file()
    meta = json.loads((out / "rankkit_setwise.json").read_text())
    assert meta["kind"] == "grpo" and meta["config"]["grpo"]["beta"] == 0.04
    logged = [h for h in meta["log_history"] if "rewards/correct/mean" in h]
    assert len(logged) == 2 and all("rewards/format/mean" in h for h in logged)
    assert not list(tmp_path.glob("r1.*")) or all(p.name == "r1.checkpoints" for p in tmp_path.glob("r1.*"))

    from rankkit.data import load_dataset
    from rankkit.rerank.setwise import Setwise
    from rankkit.types import Run

    ds = load_dataset(str(train_folder), "train").subset(2)
    stage = Setwise(ds, model=str(meta["base_model"]), adapter=str(out), k=2, depth=4, max_new_tokens=4,
                    device="cpu", show_progress=False)
    assert stage.template.prefix == "<think>"
    incoming = Run.from_trec(train_folder / "run.trec")
    run = stage(ds.queries, incoming)
    assert stage.stats["llm_calls"] > 0
    for q in ds.queries:  # the reranked top 4, then the incoming tail in its own order (keep_tail)
        assert set(run[q.qid]) == set(incoming[q.qid])
        assert [d for d, _ in run.ranked(q.qid)][4:] == [d for d, _ in incoming.ranked(q.qid)][4:]


def test_train_sft_setwise(llm_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft"
    proc = rk("train", "sft-setwise", "--config", str(llm_config), "--output", str(out), "--set",
              "sft.per_device_train_batch_size=2", "--set", "sft.max_length=400")
    assert "steps: 2" in proc.stdout
    meta = json.loads((out / "rankkit_setwise.json").read_text())
    assert meta["kind"] == "sft" and meta["num_prompts"] == 4
    assert (out / "adapter_model.safetensors").is_file()
    assert "reasoning = false" in (out / "template.toml").read_text()


def test_llm_training_config_errors(llm_config: Path) -> None:
    proc = rk("train", "grpo", "--config", str(llm_config), "--set", "grpo.temprature=0.5", check=False)
    assert proc.returncode != 0 and "temprature" in proc.stderr
    proc = rk("train", "grpo", "--config", str(llm_config), "--set", "template=missing-one", check=False)
    assert proc.returncode != 0 and "unknown prompt template 'missing-one'" in proc.stderr


# --- bad values fail at load time, before any dataset, index or model is touched ---------------------------------

BAD_TRAIN_YAML = [
    ("lr: -1.0\n", "lr must be a number > 0, got -1.0"),
    ("lora: yes please\n", "lora must be a mapping of options or true/false (short for {enabled: ...}), "
                           "got 'yes please'"),
    ("lr: 5e-4\n", "lr must be a number > 0, got '5e-4' (YAML reads 5e-4 as a string; write 5.0e-4)"),
    ("".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 10)), "expands to more than"),
]


def _fresh_env(tmp_path: Path) -> dict[str, str]:
    """The test environment with caches of its own, so what a command wrote there can be checked."""
    env = os.environ.copy()
    env["RANKKIT_CACHE_DIR"] = str(tmp_path / "cache")
    env["IR_DATASETS_HOME"] = str(tmp_path / "ir_datasets")
    return env


def _written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("bad, expected", BAD_TRAIN_YAML, ids=["negative-lr", "lora-string", "yaml-5e-4", "alias-bomb"])
def test_bad_training_values_fail_before_anything_loads(train_folder: Path, tmp_path: Path, bad: str,
                                                        expected: str) -> None:
    # a config that would index SciFact with BM25 (into RANKKIT_CACHE_DIR) and load MiniLM if it got that far
    path = tmp_path / "bad.yaml"
    head = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n" if "x1:" in bad else ""
    path.write_text(f"""{head}model: {{name: minilm, max_length: 64}}
output: {tmp_path / 'out'}
data:
  dataset: {train_folder}
  split: train
  first_stage: {ROOT / 'pipelines' / 'bm25.yaml'}
  dev: 0.25
{bad}""")
    started = time.perf_counter()
    proc = subprocess.run([*RANKKIT, "train", "reranker", "--config", str(path)], capture_output=True, text=True,
                          cwd=ROOT, env=_fresh_env(tmp_path), timeout=60)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and expected in lines[0], proc.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.*"))
    assert _written(tmp_path / "cache") == [] and _written(tmp_path / "ir_datasets") == []
    print(f"failed after {elapsed:.1f} s: {lines[0]}")


def test_bad_set_values_fail_before_anything_loads(train_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(f"model: minilm\ndata: {{dataset: {train_folder}, split: train, "
                    f"first_stage: {ROOT / 'pipelines' / 'bm25.yaml'}}}\n")
    proc = subprocess.run([*RANKKIT, "train", "reranker", "--config", str(path), "--output", str(tmp_path / "out"),
                           "--set", "data.dev=2.0", "--set", "epochs=1.5", "--set", "device=tpu9",
                           "--set", "lr=fast", "--set", "lora.target_modules=5", "--set", "model.max_length=-5",
                           "--set", "warmup_steps=-10"],
                          capture_output=True, text=True, cwd=ROOT, env=_fresh_env(tmp_path), timeout=60)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()  # every problem, joined on one line
    assert line.startswith(f"error: {path}: ")
    assert f"{path}: data.dev must be a fraction in (0, 1), a query count >= 1, a dataset id or path, or null, " \
           "got 2.0" in line, line
    assert "epochs must be an integer >= 1, got 1.5" in line and "device must be one of auto, cpu, cuda" in line
    for problem in ("lr must be a number > 0, got 'fast'", "lora.target_modules must be a non-empty list",
                    "model.max_length must be an integer >= 8, got -5", "warmup_steps must be an integer >= 0"):
        assert problem in line, line
    assert not (tmp_path / "out").exists() and _written(tmp_path / "cache") == []


def test_resume_refuses_an_output_folder_that_is_not_a_rankkit_model(config: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    args = ["train", "reranker", "--config", str(config), "--output", str(mine), "--resume"]
    proc = rk(*args, check=False)
    assert proc.returncode == 2 and f"output {mine} exists and is not a rankkit cross_encoder folder; refusing to " \
                                   "overwrite it" in proc.stderr, proc.stderr
    # rankkit checkpoints beside it do not make the folder rankkit's: a finished run would still replace it
    state = tmp_path / "mine.checkpoints" / "step-2" / "trainer_state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{}")
    proc = rk(*args, check=False)
    assert proc.returncode == 2 and "refusing to overwrite" in proc.stderr, proc.stderr
    assert "stay usable with --resume" in proc.stderr
    assert _written(mine) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    assert state.read_text() == "{}"


def test_tsprank_trains_from_the_cli_and_reranks_in_a_pipeline(tiny_bert: Path, train_folder: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "tsp"
    sets = {"model.name": str(tiny_bert), "model.max_length": 64, "model.tsp.dim": 16,
            "data.dataset": str(train_folder), "data.split": "train", "data.first_stage": str(train_folder / "run.trec"),
            "data.dev": 4, "data.dev_depth": 8, "data.groups.group_size": 8, "max_steps": 2, "epochs": 1,
            "eval_every": 2, "batch_size": 4, "log_every": 1}
    args = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    proc = rk("train", "reranker", "--config", str(ROOT / "pipelines" / "tsprank_scifact.yaml"), "--quiet",
              "--output", str(out), *args)
    assert "best dev ndcg@10" in proc.stdout and "%|" not in proc.stderr
    card = json.loads((out / "train_card.json").read_text())
    assert card["steps"] == 2 and card["config"]["objective"]["name"] == "tsp_hybrid"
    assert {h.get("global") for h in card["history"] if "loss" in h} == {0.0, 1.0}

    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline
    from rankkit.types import Run

    yaml_path = tmp_path / "rerank.yaml"
    yaml_path.write_text(f"stages:\n  - tsprank: {{model: {out}, depth: 8, decoder: milp, show_progress: false}}\n")
    ds = load_dataset(str(train_folder), "train").subset(3)
    incoming = Run.from_trec(train_folder / "run.trec")
    run = Pipeline.from_yaml(yaml_path, ds)(ds.queries, incoming)
    for q in ds.queries:
        assert set(run[q.qid]) == set(incoming[q.qid])
        assert [d for d, _ in run.ranked(q.qid)][8:] == [d for d, _ in incoming.ranked(q.qid)][8:]
    bad = rk("train", "reranker", "--config", str(ROOT / "pipelines" / "tsprank_scifact.yaml"), *args,
             "--set", "objective.decoder=gurobi", check=False)
    assert bad.returncode == 2 and "decoder" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
