"""Ray backend for the expensive inference jobs: pipelines over many queries, corpus encoding.

Nothing here schedules work itself; Ray does (https://docs.ray.io). Two jobs:

- :class:`RayPipeline` runs a pipeline YAML on Ray actors. The queries are split into
  blocks of ``block_size``; each actor loads the dataset and builds the pipeline once
  (models, indexes, the JVM), then runs the blocks it is given; the driver merges the
  blocks' runs in query order. Scores are the single-process pipeline's scores: every
  stage scores a query the same way whatever other queries share its block.
- :class:`~rankkit.scale.ray_encode.RayEncoder` (in ``ray_encode.py``) encodes documents on
  actors that each load the encoder once; the dense index is built from the vectors in corpus
  order (``rankkit index --kind dense --ray``).

Failures: actors are created with ``max_restarts`` and ``max_task_retries`` equal to
``max_retries``, so a worker process that dies (killed, out of memory, a lost node) is
restarted by Ray and its pending blocks are run again. When the retries are used up the
job raises :class:`RayBlockError` naming the block and its queries; no partial run is ever
returned. An error raised by rankkit inside a worker (bad input) is raised unchanged.

Workers see the driver's rankkit environment (``RANKKIT_*``, ``IR_DATASETS_HOME``, the
HF offline switches), so the pipeline file, models, data and caches must be reachable at
the same paths on every node (a shared file system, or Ray's ``runtime_env``). Each actor
asks for ``cpus_per_worker`` CPUs and, when the cluster has GPUs (``gpus_per_worker:
auto``), one GPU; torch in an actor uses ``cpus_per_worker`` threads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankkit.errors import ConfigError, RankkitError
from rankkit.pipeline import Stage
from rankkit.types import Query, Run

log = logging.getLogger(__name__)

_ENV_PREFIXES = ("RANKKIT_", "IR_DATASETS_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")
_CONNECT_TIMEOUT_S = 5.0


class RayBlockError(RankkitError):
    """A block of work failed on Ray after every retry; the job returned nothing."""


class RayAddressError(ConfigError):
    """A Ray address that is malformed or that cannot be reached."""


def _ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray is not installed; install the optional extra: pip install 'rankkit[ray]' "
                          "(or the pin in requirements.lock)") from None
    return ray


def check_address(address: str | None, timeout: float = _CONNECT_TIMEOUT_S) -> str | None:
    """Check a Ray cluster address before connecting; ``None`` means "start a local cluster".

    ``None``, ``""`` and ``"local"`` start a local cluster; ``"auto"`` joins the cluster this
    machine belongs to (Ray finds it); ``host:port`` and ``ray://host:port`` are reached with a
    TCP connection first, so an unreachable address fails in seconds with
    :class:`RayAddressError` instead of Ray's long connection retries.
    """
    if address is None or address.strip() in ("", "local"):
        return None
    text = address.strip()
    if text == "auto":
        return text
    rest = text.split("://", 1)[1] if "://" in text else text
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme not in ("", "ray"):
        raise RayAddressError(f"Ray address {address!r}: the scheme must be ray:// (or none), got {scheme}://")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RayAddressError(f"Ray address {address!r} is not host:port, ray://host:port, 'auto' or 'local'")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayAddressError(f"cannot reach the Ray cluster at {address} ({reason}); start it with "
                              f"`ray start --head` or pass --ray with no address for a local cluster") from None
    return text


@dataclass
class RaySettings:
    """Where and how wide a Ray job runs.

    ``address``: see :func:`check_address` (``None``: join the Ray session this process
    already has, else start a local one). ``workers``: actors to start (default: the
    cluster's CPUs // ``cpus_per_worker``, at least 1). ``block_size``: queries (or
    documents, for encoding) per task. ``max_retries``: restarts of a dead actor and
    retries of its pending blocks before the job fails.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | Literal["auto"] = "auto"
    block_size: int = 32
    max_retries: int = 2

    def __post_init__(self) -> None:
        for key in ("workers", "block_size"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"ray {key} must be an integer >= 1, got {value!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"ray max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not isinstance(self.cpus_per_worker, (int, float)) or not self.cpus_per_worker > 0:
            raise ConfigError(f"ray cpus_per_worker must be > 0, got {self.cpus_per_worker!r}")
        if self.gpus_per_worker != "auto" and (
                not isinstance(self.gpus_per_worker, (int, float)) or self.gpus_per_worker < 0):
            raise ConfigError(f"ray gpus_per_worker must be 'auto' or a number >= 0, got {self.gpus_per_worker!r}")


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[Any]:
    """Connect to (or start) Ray for one job; a session this call started is shut down after it."""
    address = check_address(settings.address)
    ray = _ray()
    if ray.is_initialized():
        if address is not None:
            log.info("Ray is already initialised in this process; using that session, not %s", address)
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None and settings.workers:
        kwargs["num_cpus"] = max(1, math.ceil(settings.workers * settings.cpus_per_worker))
    from rankkit.index.lucene import keep_signal_handlers  # Ray's crash handler would break a JVM here

    try:
        with keep_signal_handlers():
            ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise RayAddressError(f"cannot connect to Ray at {address!r}: {exc}") from None
    log.info("Ray %s: %s", "joined" if address else "started a local cluster", ray.cluster_resources())
    try:
        yield ray
    finally:
        with keep_signal_handlers():
            ray.shutdown()


def _actor_options(ray: Any, settings: RaySettings) -> tuple[int, dict[str, Any]]:
    """How many actors to start and the resource/retry options of each."""
    resources = ray.cluster_resources()
    cpus = float(resources.get("CPU", 1))
    workers = settings.workers or max(1, int(cpus // settings.cpus_per_worker))
    gpus = settings.gpus_per_worker
    if gpus == "auto":
        gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
    if gpus:
        log.info("each Ray worker asks for %s GPU(s)", gpus)
    return workers, {"num_cpus": settings.cpus_per_worker, "num_gpus": gpus,
                     "max_restarts": settings.max_retries, "max_task_retries": settings.max_retries}


def _worker_env(threads: float) -> dict[str, str]:
    """The driver's rankkit-relevant environment, plus a thread count for torch and OpenMP."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    env["OMP_NUM_THREADS"] = str(max(1, int(threads)))
    return env


def _setup_worker(env: dict[str, str], seed: int | None) -> None:
    """Run at actor start: environment, torch threads, seeds."""
    os.environ.update(env)
    import torch

    torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    if seed is not None:
        from rankkit.runcard import seed_everything

        seed_everything(seed)


class _PipelineWorker:
    """A Ray actor: one dataset and one pipeline, built once, run on blocks of queries."""

    def __init__(self, pipeline: str, dataset: str, split: str | None, overrides: dict[str, Any],
                 env: dict[str, str], seed: int | None) -> None:
        _setup_worker(env, seed)
        from rankkit.data import load_dataset
        from rankkit.pipeline import Pipeline

        self.pipeline = Pipeline.from_yaml(pipeline, load_dataset(dataset, split=split), **overrides)

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()

    def run(self, block: list[tuple[str, str]], incoming: dict[str, dict[str, float]] | None
            ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]], int]:
        """The pipeline's run on one block, the change of the stages' counters it caused, and this pid."""
        before = self.pipeline.stats()
        run = self.pipeline([Query(q, t) for q, t in block], Run(incoming) if incoming is not None else None)
        return {q: dict(docs) for q, docs in run.items()}, _stats_delta(before, self.pipeline.stats()), os.getpid()


def _stats_delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``after - before`` for the integer counters of each stage."""
    return {stage: {k: v - before.get(stage, {}).get(k, 0) for k, v in counts.items() if isinstance(v, int)}
            for stage, counts in after.items()}


def start_workers(ray: Any, actors: list[Any]) -> list[int]:
    """Wait for freshly created actors to start; their process ids. A worker that cannot start
    (its constructor raised, e.g. a model missing on that node) is a :class:`RayBlockError`."""
    from ray.exceptions import RayActorError, RayTaskError

    try:
        return list(ray.get([a.pid.remote() for a in actors]))
    except (RayActorError, RayTaskError) as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, RankkitError):
            raise cause from None
        detail = str(cause or exc).strip().splitlines()
        raise RayBlockError(f"a Ray worker could not start: {detail[-1] if detail else type(exc).__name__} "
                            "(run without --ray to see the whole error)") from None


def _describe_block(block: Sequence[tuple[str, str]] | Sequence[Any], index: int, total: int, what: str) -> str:
    first = block[0][0] if block and isinstance(block[0], tuple) else ""
    where = f", first {what} {first!r}" if first else ""
    return f"block {index + 1} of {total} ({len(block)} {what}s{where})"


def _gather(ray: Any, refs: list[Any], blocks: Sequence[Any], what: str, retries: int,
            show_progress: bool, on_block: Callable[[int, int], None] | None = None) -> list[Any]:
    """Results of ``refs`` in order; the first failure becomes a :class:`RayBlockError` (or rankkit's own error)."""
    from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError
    from tqdm.auto import tqdm

    results: list[Any] = [None] * len(refs)
    pending = {ref: i for i, ref in enumerate(refs)}
    with tqdm(total=len(refs), desc=f"ray {what} blocks", disable=not show_progress, unit="block") as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
            except RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, RankkitError):
                    raise cause from None
                raise RayBlockError(f"{_describe_block(blocks[i], i, len(blocks), what)} failed on a Ray worker: "
                                    f"{type(cause).__name__ if cause else 'error'}: {cause or exc}") from None
            except (RayActorError, WorkerCrashedError) as exc:
                raise RayBlockError(
                    f"{_describe_block(blocks[i], i, len(blocks), what)} failed: its Ray worker died "
                    f"{retries + 1} time(s) (max_retries {retries}); no result was returned "
                    f"({type(exc).__name__})") from None
            bar.update(1)
            if on_block is not None:
                on_block(len(refs) - len(pending), len(refs))
    return results


class RayPipeline(Stage):
    """A pipeline YAML run on Ray actors (see the module docstring); a stage like any other.

    ``RayPipeline("pipelines/bm25_ce.yaml", "beir/scifact", split="test")(queries)`` returns the
    run the pipeline returns in one process. ``dataset`` is an ir_datasets id or a BEIR folder
    (each worker loads it); ``overrides`` go to every stage as in
    :meth:`~rankkit.pipeline.Pipeline.from_yaml`. The pipeline is also built on the driver
    (models load lazily), so a bad file fails before any worker starts. ``on_block(done, total)``
    is called on the driver as blocks finish (progress hooks). After a run, ``block_pids`` holds
    the process id that ran each block (a restarted worker has a new one).
    """

    def __init__(self, pipeline: str | os.PathLike[str], dataset: str | os.PathLike[str], split: str | None = None,
                 settings: RaySettings | None = None, *, seed: int | None = None, show_progress: bool = True,
                 on_block: Callable[[int, int], None] | None = None, **overrides: Any) -> None:
        from rankkit.data import load_dataset
        from rankkit.pipeline import Pipeline

        self.settings = settings or RaySettings()
        check_address(self.settings.address)  # fail fast, before any model or dataset is loaded
        self.pipeline_path = str(Path(pipeline).resolve())
        self.dataset_id = str(Path(dataset).resolve()) if Path(dataset).exists() else str(dataset)
        self.split = split
        self.seed = seed
        self.show_progress = show_progress
        self.overrides = {"show_progress": False, **overrides}
        self.local = Pipeline.from_yaml(self.pipeline_path, load_dataset(self.dataset_id, split=split),
                                        **self.overrides)
        self.name = self.local.name
        self.on_block = on_block
        self.counters: dict[str, dict[str, int]] = {}
        self.worker_pids: list[int] = []
        self.block_pids: list[int] = []

    def __repr__(self) -> str:
        return f"RayPipeline({self.pipeline_path!r}, dataset={self.dataset_id!r}, settings={self.settings})"

    def stats(self) -> dict[str, dict[str, int]]:
        """The stages' counters summed over every block."""
        return self.counters

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        size = self.settings.block_size
        blocks = [[(q.qid, q.text) for q in queries[i:i + size]] for i in range(0, len(queries), size)]
        if not blocks:
            return Run({}, name=self.name)
        with ray_session(self.settings) as ray:
            workers, options = _actor_options(ray, self.settings)
            workers = min(workers, len(blocks))
            actor_cls = ray.remote(_PipelineWorker).options(**options)
            env = _worker_env(self.settings.cpus_per_worker)
            actors = [actor_cls.remote(self.pipeline_path, self.dataset_id, self.split, self.overrides, env,
                                       self.seed) for _ in range(workers)]
            try:
                self.worker_pids = start_workers(ray, actors)
                refs = []
                for i, block in enumerate(blocks):  # round robin: each actor runs its queue in order
                    incoming = {q: dict(run[q]) for q, _ in block if q in run} if run is not None else None
                    refs.append(actors[i % workers].run.remote(block, incoming))
                log.info("%s: %d queries in %d blocks on %d Ray workers", self.name, len(queries), len(blocks), workers)
                results = _gather(ray, refs, blocks, "query", self.settings.max_retries, self.show_progress,
                                  self.on_block)
            finally:
                for actor in actors:
                    ray.kill(actor)
        merged: dict[str, dict[str, float]] = {}
        self.block_pids = [pid for _, _, pid in results]
        for block, (part, counts, _) in zip(blocks, results):
            extra = set(part) - {q for q, _ in block}
            if extra:
                raise RayBlockError(f"a Ray worker returned queries outside its block: {sorted(extra)[:3]}")
            merged.update(part)
            for stage, values in counts.items():
                total = self.counters.setdefault(stage, {})
                for k, v in values.items():
                    total[k] = total.get(k, 0) + v
        return Run(merged, name=self.name)
