"""Training on two CPU processes (`accelerate launch`, gloo DDP) against one process with the same global batch.

The 2-process runs are real launches (``accelerate launch --multi_gpu --num_processes 2``:
accelerate's torchrun launcher; the workers train on the CPU because the config says
``device: cpu``) of a tiny random BERT without dropout, so the comparison is deterministic:
the 1-process run (in this process) and the 2-process run see the same global batches and
DDP's gradient average equals the 1-process gradient. What stays different is float
summation order: measured on 2 cores, the logged per-step losses agree to the 6 decimals
the card keeps and the LoRA weights to ~1e-7; the tests allow ``LOSS_TOL`` and ``WEIGHT_TOL``.
The head's bias is left out of the weight comparison: the listwise softmax loss is
shift-invariant, so its gradient is rounding noise, which AdamW turns into lr-sized steps
in either run.

Cost: three launches (killed, resumed, bi-encoder) and one in-process run, about 60 s of CPU time
in all; each launch is mostly two workers importing torch, transformers and peft.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rankkit.config import from_mapping
from rankkit.train.config import TrainConfig
from rankkit.train.loop import _merge_logs, process_shares, train_reranker

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LOSS_TOL = 1e-5  # absolute, per logged step (the card rounds to 6 decimals; losses are ~1.4)
WEIGHT_TOL = 1e-5  # absolute, every trained weight but the head's bias
STEPS, SAVE_EVERY = 8, 2  # 13 groups per epoch, batches of 4: 4 steps per epoch, the 4th a 1-group batch


@pytest.fixture(scope="module")
def bert_no_dropout(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny BERT with dropout off (same weights)."""
    from transformers import AutoTokenizer, BertModel

    path = tmp_path_factory.mktemp("models") / "tiny-bert-no-dropout"
    model = BertModel.from_pretrained(tiny_bert, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(path)
    return path


def _values(backbone: Path, train_folder: Path, output: Path, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model": {"name": str(backbone), "max_length": 32}, "output": str(output), "batch_size": 4, "epochs": 2,
        "save_every": SAVE_EVERY, "keep_checkpoints": 10, "eval_every": STEPS, "log_every": 1, "warmup_steps": 1,
        "lr": 1e-3, "device": "cpu", "lora": {"rank": 4, "alpha": 8, "dropout": 0.0},
        "data": {"dataset": str(train_folder), "split": "train", "first_stage": str(train_folder / "run.trec"),
                 "dev": 3, "dev_depth": 10, "groups": {"group_size": 4, "negatives_depth": 20}},
    }
    values.update(extra)
    return values


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch_args(config: Path, output: Path, tmp: Path, *extra: str) -> list[str]:
    """``accelerate launch`` of ``rankkit train reranker`` on 2 CPU processes, with an accelerate config of its own."""
    acc_cfg = tmp / "accelerate.yaml"
    acc_cfg.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_machines: 1\n"
                       "num_processes: 2\nmixed_precision: 'no'\ndynamo_backend: 'NO'\n")
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(acc_cfg), "--multi_gpu",
            "--num_processes", "2", "--main_process_port", str(_free_port()), "-m", "rankkit.cli", "-v",
            "train", "reranker", "--config", str(config), "--output", str(output), *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
                TRANSFORMERS_OFFLINE="1")


def _run(args: list[str]) -> tuple[str, str]:
    """Run a launch to its end (its whole process tree killed on timeout); returns stdout and stderr."""
    proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        _kill_tree(proc.pid)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{out}\n{err[-4000:]}"
    return out, err


def _kill_tree(pid: int) -> None:
    """SIGKILL a launcher and every process under it (torchrun starts its workers in sessions of their own)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def _losses(history: list[dict[str, Any]]) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in history if "loss" in h}


def _weights(checkpoint: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(checkpoint / "model.safetensors").items() if k != "linear.bias"}


def test_process_shares_split_each_global_batch_and_weigh_the_short_one() -> None:
    for groups, batch, procs in [(13, 4, 2), (12, 4, 4), (7, 6, 3), (5, 8, 4), (1, 2, 2)]:
        per_rank = [process_shares(groups, batch, procs, r) for r in range(procs)]
        assert len({len(s) for s in per_rank}) == 1  # every process takes part in every step
        for b, shares in enumerate(zip(*per_rank)):
            real = [idx for idx, scale in shares if scale > 0]
            assert sorted(i for idx in real for i in idx) == list(range(b * batch, min((b + 1) * batch, groups)))
            assert sum(scale for _, scale in shares) == pytest.approx(procs)  # DDP's mean = the batch mean
            if len(real) == procs and groups - b * batch >= batch:
                assert all(len(idx) == batch // procs and scale == 1.0 for idx, scale in shares)
    assert process_shares(13, 4, 2, 0)[-1] == ([12], 0.0) and process_shares(13, 4, 2, 1)[-1] == ([12], 2.0)


def test_merge_logs_weighs_processes_by_their_share() -> None:
    one = [[(1.0, {"loss": 0.3, "top1": 1.0})]]
    assert _merge_logs(one) == [{"loss": 0.3, "top1": 1.0}]
    two = [[(0.5, {"loss": 1.0}), (0.0, {"loss": 9.0})], [(0.5, {"loss": 3.0}), (1.0, {"loss": 2.0, "x": 4.0})]]
    assert _merge_logs(two) == [{"loss": 2.0}, {"loss": 2.0, "x": 4.0}]


def test_two_processes_follow_one_process_and_resume_after_a_kill(bert_no_dropout: Path, train_folder: Path,
                                                                   tmp_path: Path) -> None:
    started = time.perf_counter()
    one = train_reranker(from_mapping(TrainConfig, _values(bert_no_dropout, train_folder, tmp_path / "one"), "test"),
                         show_progress=False)
    print(f"\n1-process run: {time.perf_counter() - started:.1f} s")
    assert one.steps == STEPS
    assert json.loads((one.output / "train_card.json").read_text())["groups_per_epoch"] == 13
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps(_values(bert_no_dropout, train_folder, tmp_path / "unused")))  # JSON is YAML
    out = tmp_path / "two"
    ckpts = tmp_path / "two.checkpoints"
    started = time.perf_counter()
    launcher = subprocess.Popen(_launch_args(config, out, tmp_path), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not list(ckpts.glob("step-*/trainer_state.json")) and time.time() < deadline \
                and launcher.poll() is None:
            time.sleep(0.01)
    finally:
        _kill_tree(launcher.pid)
    launcher.wait(timeout=30)
    killed_at = time.perf_counter() - started
    assert not (out / "rankkit_ce.json").exists(), "training finished before it could be killed"
    done = sorted(int(p.parent.name.split("-")[1]) for p in ckpts.glob("step-*/trainer_state.json"))
    assert done and done[-1] < STEPS

    stdout, stderr = _run(_launch_args(config, out, tmp_path, "--resume"))
    total = time.perf_counter() - started
    assert "resuming from" in stderr and stdout.count("model: ") == 1  # only the main process prints
    assert f"steps: {STEPS}" in stdout and "processes: 2  groups per process and step: 2" in stdout

    # exactly one checkpoint folder per save step, each with both processes' RNG state; one final model
    steps = sorted(int(p.name.split("-")[1]) for p in ckpts.glob("step-*"))
    assert steps == list(range(SAVE_EVERY, STEPS + 1, SAVE_EVERY)) and not list(ckpts.glob(".tmp-*"))
    for step in steps:
        files = sorted(p.name for p in (ckpts / f"step-{step}").iterdir())
        assert files == ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "random_states_1.pkl",
                         "scheduler.bin", "trainer_state.json"], files
        assert json.loads((ckpts / f"step-{step}" / "trainer_state.json").read_text())["num_processes"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == ["two", "two.checkpoints"]
    assert (out / "rankkit_ce.json").is_file()
    card = json.loads((out / "train_card.json").read_text())
    assert card["num_processes"] == 2 and card["batch_size_per_process"] == 2 and card["steps"] == STEPS
    assert card["distributed_type"] == "MULTI_CPU"

    # the same training as one process: per-step losses, dev values and weights
    ref, got = _losses(one.history), _losses(card["history"])
    assert sorted(got) == list(range(1, STEPS + 1)) and sorted(ref) == sorted(got)
    diff = max(abs(ref[s] - got[s]) for s in ref)
    print(f"max |loss(1 process) - loss(2 processes)| = {diff:.2e}; killed after {killed_at:.1f} s "
          f"(checkpoints {done}), resumed run done after {total:.1f} s")
    assert diff <= LOSS_TOL, (ref, got)
    dev = [(h["step"], h["dev_ndcg@10"]) for h in card["history"] if "dev_ndcg@10" in h]
    ref_dev = [(h["step"], h["dev_ndcg@10"]) for h in one.history if "dev_ndcg@10" in h]
    assert [s for s, _ in dev] == [s for s, _ in ref_dev] == [STEPS]  # evaluated by the main process, no deadlock
    assert [v for _, v in dev] == pytest.approx([v for _, v in ref_dev], abs=1e-4)
    w1, w2 = _weights(tmp_path / "one.checkpoints" / f"step-{STEPS}"), _weights(ckpts / f"step-{STEPS}")
    assert w1.keys() == w2.keys()
    worst = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    print(f"max |weight difference| (head bias excluded) = {worst:.2e}")
    assert worst <= WEIGHT_TOL


def test_bi_encoder_trains_on_two_processes_with_in_batch_negatives_per_process(tiny_bert: Path, train_folder: Path,
                                                                                 tmp_path: Path) -> None:
    config = tmp_path / "bi.yaml"
    values = _values(tiny_bert, train_folder, tmp_path / "unused", objective="infonce", max_steps=2, eval_every=0,
                     model={"name": str(tiny_bert), "max_length": 32, "kind": "bi_encoder",
                            "learn_temperature": True})
    values["data"]["dev"] = None
    config.write_text(json.dumps(values))
    out = tmp_path / "bi"
    started = time.perf_counter()
    stdout, _ = _run(_launch_args(config, out, tmp_path))
    print(f"2-process bi-encoder run: {time.perf_counter() - started:.1f} s")
    assert stdout.count("model: ") == 1 and "steps: 2" in stdout
    assert (out / "rankkit_bi.json").is_file() and not (out / "rankkit_ce.json").exists()
    card = json.loads((out / "train_card.json").read_text())
    logged = [h for h in card["history"] if "loss" in h]
    # batch_size 4 over 2 processes: each query's softmax covers its process's 2 groups x 4 documents
    assert [h["step"] for h in logged] == [1, 2] and all(h["candidates"] == 8.0 for h in logged)
    assert sorted(p.name for p in (tmp_path / "bi.checkpoints").glob("step-*")) == ["step-2"]
    assert (tmp_path / "bi.checkpoints" / "step-2" / "random_states_1.pkl").is_file()
