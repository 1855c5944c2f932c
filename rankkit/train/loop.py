"""One training loop for every trainable scorer, on ``accelerate`` (so ``accelerate launch`` scales it).

:func:`train_reranker` builds training groups from a dataset split and its first
stage, builds the scorer that ``model.kind`` names (:mod:`rankkit.train.scorers`:
cross-encoder or bi-encoder, LoRA or full fine-tuning) and optimises the configured
objective (:mod:`rankkit.train.objectives`) with optional curriculum and per-sample
weights, logging the objective's own values. Two AdamW parameter groups
(adapter/encoder at ``lr``, head at ``head_lr``), linear warm-up then decay, gradient
clipping, autocast as ``precision`` says. Every ``save_every`` steps it writes a
resumable checkpoint (model, optimiser, scheduler and RNG state via
``Accelerator.save_state``) under ``<output>.checkpoints/``; ``resume=True``
continues from the newest complete one. With dev queries it reranks their
first-stage candidates at each evaluation, keeps the best model by nDCG@10 (ranx)
and, for scorers that support it (cross-encoders), finally chooses the interpolation
weight with the first stage on the same dev queries. The output folder holds the model, ``train_card.json`` and the dev runs.

Under ``accelerate launch`` (several processes, DDP) ``batch_size`` stays the global batch:
each step's ``batch_size`` groups are split into contiguous, equal shares, one per process
(:func:`process_shares`), and DDP's gradient average over the processes' mean losses is
the gradient of the mean over the whole batch, so the run follows the one-process run
with the same config (objectives that average over groups; in-batch negatives of a
bi-encoder stay within a process's share). Only the main process evaluates on dev
(the others receive its value) and writes the best model, the final model and the
card; every process writes its own RNG state into each checkpoint.
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
from rankkit.errors import ConfigError
from rankkit.precision import mixed_precision
from rankkit.runcard import run_card, seed_everything, write_json
from rankkit.train.config import TrainConfig
from rankkit.train.curriculum import Curriculum, Difficulty
from rankkit.train.data import TrainingData, load_training_data
from rankkit.train.distributed import (
    _Batches,
    _merge_logs,
    _quiet_unless,
    _warn_single_launched_process,
    check_batch_size,
    process_shares,
    use_cpu,
)
from rankkit.train.objectives import build_objective
from rankkit.train.scorers import Scorer, scorer_class
from rankkit.types import Run, TrainingGroup

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    """What :func:`train_reranker` produced: the model folder and its training history.

    ``is_main_process`` is false in the other processes of a multi-process run (only the main
    one wrote the model; ``interpolation`` is known there only).
    """

    output: Path
    steps: int
    best_metric: float | None
    interpolation: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0
    num_processes: int = 1
    is_main_process: bool = True


def _checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints (their state file written last), oldest first."""
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


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

    def __init__(self, cfg: TrainConfig, data: TrainingData, output: Path, show_progress: bool = True) -> None:
        from accelerate import Accelerator, DataLoaderConfiguration
        from transformers import get_linear_schedule_with_warmup

        self.cfg, self.data, self.output, self.show_progress = cfg, data, output, show_progress
        self.ckpt_root = output.parent / f"{output.name}.checkpoints"
        cpu = use_cpu(cfg)
        # split_batches: batch_size is the global batch, so the scheduler steps once per optimiser
        # step (accelerate's default steps it num_processes times, for per-process batches).
        self.acc = Accelerator(cpu=cpu, mixed_precision=mixed_precision(cfg.precision, "cpu" if cpu else "cuda"),
                               gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                               dataloader_config=DataLoaderConfiguration(split_batches=True))
        self.main = self.acc.is_main_process
        check_batch_size(cfg.batch_size, self.acc.num_processes)
        self._configure_deepspeed(cfg.batch_size // self.acc.num_processes)
        seed_everything(cfg.seed)
        with self.acc.main_process_first():  # a model conversion or download happens once
            self.scorer: Scorer = scorer_class(cfg.model.kind).build(cfg)
        batches_per_epoch = math.ceil(len(data.groups[0]) / cfg.batch_size)
        updates_per_epoch = math.ceil(batches_per_epoch / cfg.gradient_accumulation_steps)
        self.total = cfg.max_steps or cfg.epochs * updates_per_epoch
        self.objective = build_objective(cfg.objective)
        self.curriculum = Curriculum(cfg.curriculum, self.total, self.objective.pointwise) \
            if cfg.curriculum.heuristic else None
        opt = torch.optim.AdamW(self.scorer.param_groups(cfg.lr, cfg.head_lr, cfg.weight_decay))
        sched = get_linear_schedule_with_warmup(opt, min(cfg.warmup_steps, self.total), self.total)
        self.model, self.opt, self.sched = self.acc.prepare(self.scorer.model, opt, sched)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []
        self._resumed_rng: dict[str, Any] | None = None

    def _configure_deepspeed(self, per_process: int) -> None:
        """Under DeepSpeed: its per-process batch (no data loader goes through ``prepare``) and clipping; no ZeRO-3.

        Not exercised by the tests (DeepSpeed is not installed in the test environment).
        """
        plugin = self.acc.state.deepspeed_plugin
        if plugin is None:
            return
        if plugin.zero_stage == 3:
            raise ConfigError("DeepSpeed ZeRO stage 3 shards the weights, which dev evaluation and model saving "
                              "read whole on the main process: use ZeRO stage 1 or 2")
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = per_process
        if plugin.is_auto("gradient_clipping"):
            plugin.deepspeed_config["gradient_clipping"] = self.cfg.max_grad_norm

    @property
    def unwrapped(self) -> Any:
        """The scorer's model without accelerate's wrappers."""
        return self.acc.unwrap_model(self.model)

    def loader(self, epoch: int) -> Any:
        """This process's batches of ``epoch`` from batch ``batch_in_epoch`` on (the ones before it are done).

        Every process shuffles the epoch's groups the same way (seeded by ``(seed, epoch)``) and
        takes its share of each global batch (:func:`process_shares`); each batch is a collated
        dict with its ``loss_scale``. The loader is accelerate's ``DataLoaderShard``, so
        gradient accumulation syncs at the end of each epoch.
        """
        from accelerate.data_loader import DataLoaderShard

        groups: list[TrainingGroup] = self.data.groups[epoch % len(self.data.groups)]
        order = np.random.default_rng([self.cfg.seed, epoch, 7]).permutation(len(groups))
        shares = process_shares(len(groups), self.cfg.batch_size, self.acc.num_processes, self.acc.process_index)
        batches = [([groups[order[i]] for i in idx], scale) for idx, scale in shares]
        dl = DataLoaderShard(_Batches(batches[self.batch_in_epoch:]), device=self.acc.device, batch_size=None,
                             collate_fn=self._collate)
        return dl

    def _collate(self, item: tuple[list[TrainingGroup], float]) -> dict[str, Any]:
        groups, scale = item
        batch = self.scorer.collate(groups)
        batch["loss_scale"] = scale
        return batch

    # --- checkpoints ----------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write ``step-<step>`` atomically: every process saves into a temporary folder, the main one renames it.

        ``Accelerator.save_state`` is collective: the main process writes the model, optimiser and
        scheduler, every process its own ``random_states_<rank>.pkl`` (so the checkpoint folder must
        be on a file system that every process sees). The state file is written last, then the
        folder is renamed into place, so a killed run never leaves a complete-looking partial one.
        """
        acc = self.acc
        final = self.ckpt_root / f"step-{self.step}"
        tmp = self.ckpt_root / f".tmp-step-{self.step}"
        acc.wait_for_everyone()
        if self.main:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.main:
            state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                     "best": self.best, "history": self.history, "num_processes": acc.num_processes}
            (tmp / STATE_FILE).write_text(json.dumps(state))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in _checkpoints(self.ckpt_root)[:-self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def resume(self) -> bool:
        found = _checkpoints(self.ckpt_root)
        if not found:
            log.warning("--resume: no checkpoint under %s; starting from scratch", self.ckpt_root)
            return False
        last = found[-1]
        state = json.loads((last / STATE_FILE).read_text())
        saved = state.get("num_processes", 1)
        if saved != self.acc.num_processes:
            raise ConfigError(f"--resume: checkpoint {last} was written by {saved} process(es), this run has "
                              f"{self.acc.num_processes}; resume with the same number of processes (each one "
                              "restores its own random state)")
        self.acc.load_state(str(last))
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best, self.history = state["best"], state["history"]
        self._resumed_rng = _get_rng()
        log.info("resuming from %s (step %d, epoch %d, batch %d)", last, self.step, self.epoch, self.batch_in_epoch)
        return True

    # --- evaluation -----------------------------------------------------------------

    def evaluate(self) -> None:
        """Rerank the dev queries on the main process; every process records its value and the best so far."""
        if self.data.dev is None:
            return
        from rankkit.evaluate import evaluate

        model = self.unwrapped
        run, value = None, 0.0
        if self.main:
            known = self.data.dev.query_texts()
            dev_run = Run({q: self.data.dev_run[q] for q in self.data.dev_run if q in known},
                          name=self.data.dev_run.name)
            device = self.acc.device  # torch.device("cpu", rank) under MULTI_CPU: the stages take "cpu"
            run = self.scorer.rerank(self.data.dev, dev_run, self.cfg.data.dev_depth, self.cfg.eval_batch_size,
                                     "cpu" if device.type == "cpu" else str(device))
            model.train()
            value = evaluate(run, self.data.dev.qrels, self.cfg.select_metric)[self.cfg.select_metric]
        if self.acc.num_processes > 1:  # the others wait here for the main process's value
            from accelerate.utils import broadcast_object_list

            value = broadcast_object_list([value])[0]
        self.history.append({"step": self.step, f"dev_{self.cfg.select_metric}": round(value, 6)})
        log.info("step %d: dev %s = %.4f", self.step, self.cfg.select_metric, value)
        if self.best is None or value > self.best:
            self.best = value
            if run is not None:
                model.meta["dev"] = {"step": self.step, self.cfg.select_metric: value}
                model.save(self.ckpt_root / "best")
                run.to_trec(self.ckpt_root / "best-dev.trec", tag=self.scorer.kind)

    def should_eval(self, end_of_epoch: bool) -> bool:
        every = self.cfg.eval_every
        if self.data.dev is None or every == 0:
            return False
        return end_of_epoch if every is None else self.step % every == 0

    # --- the loop -------------------------------------------------------------------

    def run(self) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total, initial=self.step, desc="train", unit="step",
                   disable=not (self.show_progress and self.main))
        running: list[tuple[float, dict[str, float]]] = []
        self.model.train()
        while self.step < self.total:
            loader = self.loader(self.epoch)
            n_batches = self.batch_in_epoch + len(loader)
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
                        values = self.gather_logs(running)
                        entry: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
                        entry.update({k: round(float(np.mean([r[k] for r in values if k in r])), 6)
                                      for k in dict.fromkeys(k for r in values for k in r)})
                        entry["lr"] = self.sched.get_last_lr()[0]
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

    def gather_logs(self, running: list[tuple[float, dict[str, float]]]) -> list[dict[str, float]]:
        """The logged values of each batch since the last log, over all processes (:func:`_merge_logs`)."""
        if self.acc.num_processes == 1:
            return _merge_logs([running])
        from accelerate.utils import gather_object

        return _merge_logs(gather_object([running]))

    def weights(self, batch: dict[str, Any], labels: torch.Tensor) -> torch.Tensor | None:
        """Curriculum weights times per-sample weights, shaped for the objective ([G, n] pointwise, else [G])."""
        weights = None
        if self.curriculum is not None:
            weights = self.curriculum.weights(batch["difficulty"].to(self.acc.device), labels, self.step)
        sample = batch.get("sample_weights")
        if sample is not None:
            sample = sample.to(self.acc.device)
            if not self.objective.pointwise:
                sample = sample.mean(1)
            weights = sample if weights is None else weights * sample
        return weights

    def train_batch(self, batch: dict[str, Any]) -> tuple[float, dict[str, float]]:
        """One forward/backward pass (and an optimiser step when gradients sync).

        Returns this process's share of the global batch (0 for a padding share) and the logged values.
        The loss is multiplied by the batch's ``loss_scale`` (:func:`process_shares`) before backward.
        """
        self.objective.at_step(self.step, self.epoch)
        scale = batch.pop("loss_scale", 1.0)
        with self.acc.accumulate(self.model):
            labels = batch["labels"].to(self.acc.device)
            if self.cfg.forward_chunk:
                out = self.chunked_pass(batch, labels, self.cfg.forward_chunk, scale)
            else:
                scores, in_batch = self.scorer.forward(self.model, batch, self.acc.device)
                out = self.objective(scores, labels, self.weights(batch, labels), in_batch=in_batch)
                self.acc.backward(out.loss if scale == 1.0 else out.loss * scale)
            if self.acc.sync_gradients:
                self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad()
        return scale / self.acc.num_processes, {"loss": float(out.loss.detach()), **out.logs}

    def chunked_pass(self, batch: dict[str, Any], labels: torch.Tensor, chunk: int, scale: float = 1.0) -> Any:
        """Forward and backward ``chunk`` pairs at a time (gradient caching; see ``TrainConfig.forward_chunk``).

        Pass 1 scores every chunk without gradients; the objective's gradient with respect to
        those scores is then pushed through each chunk re-run with gradients. Each chunk's
        random state (dropout) is replayed in pass 2, so both passes compute the same scores.
        Under data parallelism gradients are synchronised once, at the last chunk. ``scale``
        multiplies the loss (a process's share of the global batch, :func:`process_shares`).
        """
        import contextlib

        G, n = labels.shape
        bounds = [(a, min(a + chunk, G * n)) for a in range(0, G * n, chunk)]
        states, parts = [], []
        with torch.no_grad():
            for a, b in bounds:
                states.append(_torch_rng())
                parts.append(self.scorer.score_range(self.model, batch, self.acc.device, a, b).float())
        scores = torch.cat(parts).view(G, n).requires_grad_(True)
        out = self.objective(scores, labels, self.weights(batch, labels))
        (grad,) = torch.autograd.grad(out.loss if scale == 1.0 else out.loss * scale, scores)
        grad = grad.reshape(-1)
        after = _torch_rng()
        for i, ((a, b), state) in enumerate(zip(bounds, states)):
            _set_torch_rng(state)
            last = i == len(bounds) - 1
            with contextlib.nullcontext() if last else self.acc.no_sync(self.model):
                part = self.scorer.score_range(self.model, batch, self.acc.device, a, b)
                self.acc.backward((part.float() * grad[a:b]).sum())
        _set_torch_rng(after)
        out.loss = out.loss.detach()
        return out


def _torch_rng() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """torch's CPU (and CUDA) random state, for replaying dropout."""
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def _set_torch_rng(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def check_output(output: Path, config_file: str, kind: str, resume: bool) -> None:
    """Refuse to train into an existing ``output`` folder that a finished run could not safely replace.

    The model is written atomically at the end (the old folder is replaced), so an
    existing ``output`` must be a rankkit ``kind`` model folder (its ``config_file``). With
    ``resume`` as without: a killed run never leaves a partial output folder behind (its
    state is in ``<output>.checkpoints``), so anything else there belongs to someone
    else. ``resume`` also needs the output to be a folder path, not a file.
    """
    if not output.exists() or (output / config_file).is_file():
        return
    ckpts = output.parent / f"{output.name}.checkpoints"
    kept = f"; the checkpoints in {ckpts} stay usable with --resume" if resume and _checkpoints(ckpts) else ""
    what = " (it is a file)" if output.is_file() else ""
    raise ConfigError(f"output {output} exists and is not a rankkit {kind} folder{what}; refusing to overwrite it "
                      f"(choose another output, or move it away{kept})")


def train_reranker(cfg: TrainConfig, base_dir: str | os.PathLike[str] = ".", *, resume: bool = False,
                   data: TrainingData | None = None, show_progress: bool = True) -> TrainResult:
    """Train the scorer of ``cfg.model.kind`` as configured; returns where the model was written.

    ``base_dir`` resolves relative paths of the config (its own folder for a YAML
    file). ``resume`` continues from the newest checkpoint of the same output.
    ``data`` skips loading (tests, experiments that share first-stage runs).
    ``show_progress: False`` hides the progress bars (the first stage's and training's).
    Under ``accelerate launch`` every process calls it; the main process loads the data
    first (so a first-stage index or run cache is built once), logs, shows progress and
    writes the output; see the module docstring for how the batch is shared.
    """
    from accelerate import PartialState

    start = time.perf_counter()
    base = Path(base_dir)
    output = Path(cfg.output) if Path(cfg.output).is_absolute() else base / cfg.output
    kind = scorer_class(cfg.model.kind)
    check_output(output, kind.config_file, cfg.model.kind, resume)
    state = PartialState(cpu=use_cpu(cfg))
    check_batch_size(cfg.batch_size, state.num_processes)  # before any data loads
    if state.num_processes == 1:
        _warn_single_launched_process()
    with _quiet_unless(state.is_main_process):
        seed_everything(cfg.seed)
        if data is None:
            with state.main_process_first():
                data = load_training_data(cfg, base, show_progress and state.is_main_process)
        if cfg.curriculum.heuristic:
            data = data.with_difficulty(Difficulty(data.run, cfg.curriculum.heuristic))
        loop = _Loop(cfg, data, output, show_progress)
        if not resume:
            if loop.main:
                shutil.rmtree(loop.ckpt_root, ignore_errors=True)
            loop.acc.wait_for_everyone()
        elif loop.resume() and loop.step >= loop.total:
            log.info("checkpoint already at the final step %d", loop.step)
        if state.num_processes > 1:
            log.info("training on %d processes (%s), %d groups per process and step", state.num_processes,
                     state.distributed_type.value, cfg.batch_size // state.num_processes)
        loop.run()
        loop.acc.wait_for_everyone()
        interp = _finish(loop, kind, output, start) if loop.main else None
        loop.acc.wait_for_everyone()
    return TrainResult(output, loop.step, loop.best, interp, loop.history, time.perf_counter() - start,
                       state.num_processes, loop.main)


def _finish(loop: _Loop, kind: type[Scorer], output: Path, start: float) -> dict[str, Any] | None:
    """Main process: pick the best dev model, choose the interpolation weight, write the model and its card."""
    cfg, data = loop.cfg, loop.data
    best_dir = loop.ckpt_root / "best"
    model = kind.load(best_dir).model if best_dir.is_dir() else loop.unwrapped
    interp = None
    if data.dev is not None and cfg.tune_interpolation and kind.supports_interpolation \
            and (loop.ckpt_root / "best-dev.trec").is_file():
        from rankkit.rerank.interpolate import select_weight

        dev_scores = Run.from_trec(loop.ckpt_root / "best-dev.trec")
        weight, values = select_weight(data.dev_run.top_k(cfg.data.dev_depth), dev_scores, data.dev.qrels,
                                       cfg.select_metric)
        interp = {"weight": weight, "metric": cfg.select_metric, "dev_values": values,
                  "dev_queries": len(data.dev.queries), "depth": cfg.data.dev_depth}
        model.meta["interpolation"] = interp
        log.info("interpolation weight %.1f chosen on %d dev queries (%s %.4f)", weight,
                 len(data.dev.queries), cfg.select_metric, values[weight])
    wall = time.perf_counter() - start
    model.meta["train"] = {"kind": cfg.model.kind, "objective": cfg.objective, "steps": loop.step, "seed": cfg.seed,
                           "curriculum": to_mapping(cfg.curriculum), "lora": to_mapping(cfg.lora)}
    model.save(output)
    procs = loop.acc.num_processes
    card = run_card(to_mapping(cfg), cfg.seed, wall)
    card.update({"history": loop.history, "best_dev": loop.best, "interpolation": interp,
                 "groups_per_epoch": len(data.groups[0]), "steps": loop.step, "num_processes": procs,
                 "distributed_type": loop.acc.distributed_type.value,
                 "batch_size_per_process": cfg.batch_size // procs})
    write_json(card, output / "train_card.json")
    return interp
