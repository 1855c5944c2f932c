"""Cross-encoder reranker training loop on ``accelerate`` (so ``accelerate launch`` scales it).

:func:`train_reranker` builds training groups from a dataset split and its first
stage, wraps a :class:`CrossEncoderModel` with LoRA (or trains it in full), and
optimises the chosen objective with optional curriculum weights. Two AdamW
parameter groups (adapter/encoder at ``lr``, scoring head at ``head_lr``), linear
warm-up then decay, gradient clipping. Every ``save_every`` steps it writes a
resumable checkpoint (model, optimiser, scheduler and RNG state via
``Accelerator.save_state``) under ``<output>.checkpoints/``; ``resume=True``
continues from the newest complete one. With dev queries it reranks their
first-stage candidates at each evaluation, keeps the best model by nDCG@10 (ranx)
and finally chooses the interpolation weight with the first stage on the same dev
queries. The output folder holds the model, ``train_card.json`` and the dev runs.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankkit.config import to_mapping
from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError
from rankkit.rerank.ce_model import CrossEncoderModel
from rankkit.runcard import run_card, seed_everything, write_json
from rankkit.train.config import TrainConfig
from rankkit.train.curriculum import Curriculum, Difficulty
from rankkit.train.data import TrainingData, collate, load_training_data
from rankkit.train.objectives import POINTWISE, get_objective
from rankkit.types import Run, TrainingGroup

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    """What :func:`train_reranker` produced: the model folder and its training history."""

    output: Path
    steps: int
    best_metric: float | None
    interpolation: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0


def _param_groups(model: CrossEncoderModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: encoder/adapter parameters at ``lr``, the scoring head at ``head_lr`` (no decay on biases)."""
    head, body = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith("linear.") or ".modules_to_save." in name
        (head if is_head else body).append((name, p))
    groups = []
    for params, lr in ((body, cfg.lr), (head, cfg.head_lr)):
        decay = [p for n, p in params if p.ndim > 1]
        no_decay = [p for n, p in params if p.ndim <= 1]
        groups += [{"params": decay, "lr": lr, "weight_decay": cfg.weight_decay},
                   {"params": no_decay, "lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _build_model(cfg: TrainConfig) -> CrossEncoderModel:
    if cfg.init_from:
        model = CrossEncoderModel.load(cfg.init_from, trainable=True, max_length=cfg.max_length)
        if not model.is_peft and cfg.lora.enabled:
            model.add_lora(cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
        return model
    model = CrossEncoderModel.new(cfg.model, head=cfg.head, max_length=cfg.max_length, seed=cfg.seed)
    if cfg.lora.enabled:
        model.add_lora(cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    return model


def _checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints (their state file written last), oldest first."""
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def rerank_run(model: CrossEncoderModel, dataset: Dataset, run: Run, depth: int, batch_size: int = 64,
               device: str = "auto") -> Run:
    """Score the top ``depth`` candidates of ``run`` with ``model`` (dev evaluation and experiments).

    Runs the :class:`~rankkit.rerank.cross_encoder.CrossEncoder` stage (CE scores only) over the
    queries of ``run`` that ``dataset`` has.
    """
    from rankkit.rerank.cross_encoder import CrossEncoder

    texts = dataset.query_texts()
    known = Run({q: run[q] for q in run if q in texts}, name=run.name)
    stage = CrossEncoder(dataset, scorer=model, depth=depth, batch_size=batch_size, device=device,
                         show_progress=False)
    return stage(dataset.queries, known)


def _get_rng() -> dict[str, Any]:
    """Snapshot of Python's, NumPy's and torch's (CPU and CUDA) random states."""
    import random

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict[str, Any]) -> None:
    """Restore a :func:`_get_rng` snapshot."""
    import random

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


class _Loop:
    """State of one training run (kept in a class so checkpointing sees all of it)."""

    def __init__(self, cfg: TrainConfig, data: TrainingData, output: Path) -> None:
        from accelerate import Accelerator
        from transformers import get_linear_schedule_with_warmup

        self.cfg, self.data, self.output = cfg, data, output
        self.ckpt_root = output.parent / f"{output.name}.checkpoints"
        cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
        precision = cfg.mixed_precision
        if precision == "auto":
            precision = "no" if cpu else "bf16"
        self.acc = Accelerator(cpu=cpu, mixed_precision=precision,
                               gradient_accumulation_steps=cfg.gradient_accumulation_steps)
        seed_everything(cfg.seed)
        self.model = _build_model(cfg)
        per_process = math.ceil(len(data.groups[0]) / (cfg.batch_size * self.acc.num_processes))
        updates_per_epoch = math.ceil(per_process / cfg.gradient_accumulation_steps)
        self.total = cfg.max_steps or cfg.epochs * updates_per_epoch
        self.objective = get_objective(cfg.objective)
        self.curriculum = Curriculum(cfg.curriculum, self.total, cfg.objective in POINTWISE) \
            if cfg.curriculum.heuristic else None
        opt = torch.optim.AdamW(_param_groups(self.model, cfg))
        sched = get_linear_schedule_with_warmup(opt, min(cfg.warmup_steps, self.total), self.total)
        self.model, self.opt, self.sched = self.acc.prepare(self.model, opt, sched)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []
        self._resumed_rng: dict[str, Any] | None = None

    @property
    def unwrapped(self) -> CrossEncoderModel:
        return self.acc.unwrap_model(self.model)

    def loader(self, epoch: int) -> Any:
        groups: list[TrainingGroup] = self.data.groups[epoch % len(self.data.groups)]
        order = np.random.default_rng([self.cfg.seed, epoch, 7]).permutation(len(groups))
        tok, max_len = self.unwrapped.tokenizer, self.cfg.max_length
        dl = torch.utils.data.DataLoader([groups[i] for i in order], batch_size=self.cfg.batch_size,
                                         shuffle=False, collate_fn=lambda b: collate(b, tok, max_len))
        return self.acc.prepare_data_loader(dl)

    # --- checkpoints ----------------------------------------------------------------

    def save_checkpoint(self) -> None:
        self.acc.wait_for_everyone()
        if not self.acc.is_main_process:
            return
        final = self.ckpt_root / f"step-{self.step}"
        tmp = self.ckpt_root / f".tmp-step-{self.step}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.acc.save_state(str(tmp))
        state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "best": self.best, "history": self.history}
        (tmp / STATE_FILE).write_text(json.dumps(state))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in _checkpoints(self.ckpt_root)[:-self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def resume(self) -> bool:
        found = _checkpoints(self.ckpt_root)
        if not found:
            log.warning("--resume: no checkpoint under %s; starting from scratch", self.ckpt_root)
            return False
        last = found[-1]
        self.acc.load_state(str(last))
        state = json.loads((last / STATE_FILE).read_text())
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best, self.history = state["best"], state["history"]
        self._resumed_rng = _get_rng()
        log.info("resuming from %s (step %d, epoch %d, batch %d)", last, self.step, self.epoch, self.batch_in_epoch)
        return True

    # --- evaluation -----------------------------------------------------------------

    def evaluate(self) -> None:
        if self.data.dev is None:
            return
        from rankkit.evaluate import evaluate

        model = self.unwrapped
        run = rerank_run(model, self.data.dev, self.data.dev_run, self.cfg.data.dev_depth,
                         self.cfg.eval_batch_size, device=str(self.acc.device))
        model.train()
        value = evaluate(run, self.data.dev.qrels, self.cfg.select_metric)[self.cfg.select_metric]
        self.history.append({"step": self.step, f"dev_{self.cfg.select_metric}": round(value, 6)})
        log.info("step %d: dev %s = %.4f", self.step, self.cfg.select_metric, value)
        if self.acc.is_main_process and (self.best is None or value > self.best):
            self.best = value
            model.meta["dev"] = {"step": self.step, self.cfg.select_metric: value}
            model.save(self.ckpt_root / "best")
            run.to_trec(self.ckpt_root / "best-dev.trec", tag="cross-encoder")

    def should_eval(self, end_of_epoch: bool) -> bool:
        every = self.cfg.eval_every
        if self.data.dev is None or every == 0:
            return False
        return end_of_epoch if every is None else self.step % every == 0

    # --- the loop -------------------------------------------------------------------

    def run(self) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total, initial=self.step, desc="train", unit="step",
                   disable=not self.acc.is_local_main_process)
        running: list[float] = []
        self.model.train()
        while self.step < self.total:
            full = self.loader(self.epoch)
            n_batches = len(full)
            loader = self.acc.skip_first_batches(full, self.batch_in_epoch) if self.batch_in_epoch else full
            batches: Any = iter(loader)
            if self._resumed_rng is not None:
                # Starting a DataLoader iterator draws from torch's RNG (at the first batch), which the
                # uninterrupted run did at the start of the epoch: restore the checkpoint's RNG after it.
                first = next(batches, None)
                _set_rng(self._resumed_rng)
                self._resumed_rng = None
                batches = itertools.chain([first] if first is not None else [], batches)
            for batch in batches:
                running.append(self.train_batch(batch))
                self.batch_in_epoch += 1
                end_of_epoch = self.batch_in_epoch >= n_batches
                if self.acc.sync_gradients:
                    self.step += 1
                    bar.update(1)
                    if self.step % self.cfg.log_every == 0 or self.step == self.total:
                        entry = {"step": self.step, "epoch": self.epoch, "loss": round(float(np.mean(running)), 6),
                                 "lr": self.sched.get_last_lr()[0]}
                        self.history.append(entry)
                        bar.set_postfix(loss=entry["loss"])
                        running = []
                    if self.should_eval(end_of_epoch) or (self.step == self.total and self.cfg.eval_every != 0):
                        self.evaluate()
                if end_of_epoch:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                if self.acc.sync_gradients and (self.step % self.cfg.save_every == 0 or self.step == self.total):
                    self.save_checkpoint()
                if self.step >= self.total:
                    break
        bar.close()

    def train_batch(self, batch: dict[str, Any]) -> float:
        """One forward/backward pass (and an optimiser step when gradients sync); returns the loss."""
        with self.acc.accumulate(self.model):
            feats = {k: v.to(self.acc.device) for k, v in batch["features"].items()}
            labels = batch["labels"].to(self.acc.device)
            scores = self.model(**feats).view(labels.shape)
            weights = None
            if self.curriculum is not None:
                weights = self.curriculum.weights(batch["difficulty"].to(self.acc.device), labels, self.step)
            loss = self.objective(scores, labels, weights)
            self.acc.backward(loss)
            if self.acc.sync_gradients:
                self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad()
        return float(loss.detach())


def train_reranker(cfg: TrainConfig, base_dir: str | os.PathLike[str] = ".", *, resume: bool = False,
                   data: TrainingData | None = None) -> TrainResult:
    """Train a cross-encoder reranker as configured; returns where the model was written.

    ``base_dir`` resolves relative paths of the config (its own folder for a YAML
    file). ``resume`` continues from the newest checkpoint of the same output.
    ``data`` skips loading (tests, experiments that share first-stage runs).
    """
    start = time.perf_counter()
    base = Path(base_dir)
    output = Path(cfg.output) if Path(cfg.output).is_absolute() else base / cfg.output
    if output.exists() and not resume and not (output / "rankkit_ce.json").is_file():
        raise ConfigError(f"output {output} exists and is not a rankkit model folder; refusing to overwrite it")
    seed_everything(cfg.seed)
    if data is None:
        data = load_training_data(cfg, base)
    if cfg.curriculum.heuristic:
        data = data.with_difficulty(Difficulty(data.run, cfg.curriculum.heuristic))
    loop = _Loop(cfg, data, output)
    if not resume:
        shutil.rmtree(loop.ckpt_root, ignore_errors=True)
    elif loop.resume() and loop.step >= loop.total:
        log.info("checkpoint already at the final step %d", loop.step)
    loop.run()
    best_dir = loop.ckpt_root / "best"
    model = CrossEncoderModel.load(str(best_dir)) if best_dir.is_dir() else loop.unwrapped
    interp = None
    if data.dev is not None and cfg.tune_interpolation and (loop.ckpt_root / "best-dev.trec").is_file():
        from rankkit.rerank.interpolate import select_weight

        dev_ce = Run.from_trec(loop.ckpt_root / "best-dev.trec")
        weight, values = select_weight(data.dev_run.top_k(cfg.data.dev_depth), dev_ce, data.dev.qrels,
                                       cfg.select_metric)
        interp = {"weight": weight, "metric": cfg.select_metric, "dev_values": values,
                  "dev_queries": len(data.dev.queries), "depth": cfg.data.dev_depth}
        model.meta["interpolation"] = interp
        log.info("interpolation weight %.1f chosen on %d dev queries (%s %.4f)", weight,
                 len(data.dev.queries), cfg.select_metric, values[weight])
    wall = time.perf_counter() - start
    model.meta["train"] = {"objective": cfg.objective, "steps": loop.step, "seed": cfg.seed,
                           "curriculum": to_mapping(cfg.curriculum), "lora": to_mapping(cfg.lora)}
    if loop.acc.is_main_process:
        model.save(output)
        card = run_card(to_mapping(cfg), cfg.seed, wall)
        card.update({"history": loop.history, "best_dev": loop.best, "interpolation": interp,
                     "groups_per_epoch": len(data.groups[0]), "steps": loop.step})
        write_json(card, output / "train_card.json")
    return TrainResult(output, loop.step, loop.best, interp, loop.history, wall)
