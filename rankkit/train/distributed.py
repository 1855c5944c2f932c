"""What the training loop needs to run on several processes (``accelerate launch``, DDP).

``batch_size`` is the global batch: :func:`process_shares` gives each process its contiguous
share of every step's groups and a loss scale, so DDP's gradient average equals the
one-process gradient; :func:`_merge_logs` merges the processes' logged values by share.
The loop itself is :mod:`rankkit.train.loop`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence

import torch

from rankkit.errors import ConfigError
from rankkit.train.config import TrainConfig
from rankkit.types import TrainingGroup

log = logging.getLogger("rankkit.train.loop")


def process_shares(num_groups: int, batch_size: int, num_processes: int, rank: int) -> list[tuple[list[int], float]]:
    """Process ``rank``'s share of each global batch of an epoch, with its loss scale.

    The epoch's ``num_groups`` groups (in their shuffled order) form global batches of
    ``batch_size`` (the last one may be shorter), as in a one-process run. Each batch is
    split into ``num_processes`` contiguous parts of equal size (``batch_size`` must be a
    multiple of ``num_processes``; the short last batch is split as evenly as possible).
    The scale ``num_processes * len(share) / len(batch)`` makes DDP's average of the
    processes' mean losses equal the mean over the whole batch; it is 1 for every full
    batch. A process with no group in a short last batch gets the batch's first group with
    scale 0: it still takes part in the gradient all-reduce but adds nothing to it. (Objectives
    with per-sample weights normalise by the weights of each process's share, as they do per
    micro-batch under gradient accumulation, so there the equality is approximate.)
    """
    shares = []
    for start in range(0, num_groups, batch_size):
        size = min(batch_size, num_groups - start)
        lo, hi = start + size * rank // num_processes, start + size * (rank + 1) // num_processes
        shares.append((list(range(lo, hi)), num_processes * (hi - lo) / size) if hi > lo else ([start], 0.0))
    return shares


def _merge_logs(per_process: Sequence[Sequence[tuple[float, dict[str, float]]]]) -> list[dict[str, float]]:
    """One dict of logged values per batch: each value averaged over the processes, weighted by their groups.

    ``per_process[p][i]`` is process p's ``(weight, values)`` of batch i (weight: its share of the
    global batch, 0 for a padding share). With one process the values are returned unchanged.
    """
    if len(per_process) == 1:
        return [values for _, values in per_process[0]]
    merged = []
    for entries in zip(*per_process):
        keys = dict.fromkeys(k for _, values in entries for k in values)
        out = {}
        for k in keys:
            pairs = [(w, values[k]) for w, values in entries if k in values and w > 0]
            total = sum(w for w, _ in pairs)
            out[k] = sum(w * v for w, v in pairs) / total if total > 0 else float("nan")
        merged.append(out)
    return merged


class _Batches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """This process's batches of one epoch, each ``(groups, loss scale)`` (a dataset of whole batches)."""

    def __init__(self, batches: list[tuple[list[TrainingGroup], float]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[list[TrainingGroup], float]:
        return self.batches[i]


def check_batch_size(batch_size: int, num_processes: int) -> None:
    """Refuse a global ``batch_size`` that the processes cannot share equally (:class:`ConfigError`)."""
    if batch_size % num_processes:
        raise ConfigError(f"batch_size {batch_size} is the global batch (groups per step over all processes) and "
                          f"must be a multiple of the {num_processes} processes: each process takes batch_size / "
                          f"{num_processes} groups (e.g. batch_size: "
                          f"{math.ceil(batch_size / num_processes) * num_processes})")


def use_cpu(cfg: TrainConfig) -> bool:
    """Whether training runs on the CPU (``device: cpu``, or ``auto`` without CUDA)."""
    return cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())


def _warn_single_launched_process() -> None:
    """Warn when ``accelerate launch`` asked for several processes but started this one alone.

    ``accelerate launch --cpu --num_processes N`` (and ``--num_processes N`` alone without a GPU
    config) runs one process unless ``--mpirun_hostfile`` is given; it still sets ``MASTER_ADDR``.
    """
    env = os.environ
    spread = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
    if "ACCELERATE_MIXED_PRECISION" in env and "MASTER_ADDR" in env and not any(k in env for k in spread):
        log.warning("accelerate launch started a single process: without --mpirun_hostfile, `accelerate launch "
                    "--cpu --num_processes N` runs one process (the result is the same, only slower); start N CPU "
                    "processes with `accelerate launch --multi_gpu --num_processes N` (torchrun; the processes "
                    "train on the CPU when device is cpu, or auto without CUDA)")


@contextlib.contextmanager
def _quiet_unless(main: bool) -> Iterator[None]:
    """Outside the main process, rankkit logs warnings and errors only (one copy of the progress logs)."""
    logger = logging.getLogger("rankkit")
    level = logger.level
    if not main:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
