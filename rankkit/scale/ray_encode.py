"""Corpus encoding on Ray actors, for dense indexes too large for one process (``rankkit index --kind dense --ray``).

Each actor loads the encoder once; documents go out in blocks of ``block_size`` and their
vectors come back in input order, so the index built from them is the single-process index.
Connection, resources, retries and errors are those of :mod:`rankkit.scale.ray_backend`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankkit.errors import RankkitError
from rankkit.scale.ray_backend import (
    RaySettings,
    _actor_options,
    _gather,
    _setup_worker,
    _worker_env,
    check_address,
    ray_session,
    start_workers,
)
from rankkit.types import Document

log = logging.getLogger(__name__)


class _EncoderWorker:
    """A Ray actor holding one :class:`~rankkit.retrieve.dense.Encoder`."""

    def __init__(self, options: dict[str, Any], env: dict[str, str]) -> None:
        _setup_worker(env, None)
        from rankkit.retrieve.dense import Encoder

        self.encoder = Encoder(**options)

    def pid(self) -> int:
        """The worker's process id."""
        return os.getpid()

    def encode(self, texts: list[str], prefix: str) -> np.ndarray:
        """Vectors of ``texts`` (float32, one row each)."""
        return self.encoder.encode(texts, prefix)


class RayEncoder:
    """Encode documents on Ray actors, each loading the encoder once; use as a context manager.

    ``options`` are :class:`~rankkit.retrieve.dense.Encoder` keyword arguments. Inside the
    ``with`` block, :meth:`encode_docs` splits documents into blocks of
    ``settings.block_size`` and returns their vectors in input order.
    """

    def __init__(self, options: dict[str, Any], settings: RaySettings | None = None, *,
                 show_progress: bool = True) -> None:
        self.options = {**options, "show_progress": False}
        self.settings = settings or RaySettings(block_size=1024)
        check_address(self.settings.address)
        self.show_progress = show_progress
        self._stack: contextlib.ExitStack | None = None
        self._ray: Any = None
        self._actors: list[Any] = []
        self.worker_pids: list[int] = []

    def __enter__(self) -> RayEncoder:
        self._stack = contextlib.ExitStack()
        try:
            self._ray = self._stack.enter_context(ray_session(self.settings))
            workers, options = _actor_options(self._ray, self.settings)
            actor_cls = self._ray.remote(_EncoderWorker).options(**options)
            env = _worker_env(self.settings.cpus_per_worker)
            self._actors = [actor_cls.remote(self.options, env) for _ in range(workers)]
            self.worker_pids = start_workers(self._ray, self._actors)
            log.info("encoding on %d Ray workers", workers)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self._actors = []
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def encode(self, texts: Sequence[str], prefix: str = "") -> np.ndarray:
        """Vectors of ``texts`` (each prefixed with ``prefix``), in order."""
        if not self._actors:
            raise RankkitError("RayEncoder.encode is only usable inside `with RayEncoder(...) as encoder:`")
        size = self.settings.block_size
        blocks = [list(texts[i:i + size]) for i in range(0, len(texts), size)]
        refs = [self._actors[i % len(self._actors)].encode.remote(block, prefix) for i, block in enumerate(blocks)]
        parts = _gather(self._ray, refs, blocks, "document", self.settings.max_retries, self.show_progress)
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def encode_docs(self, docs: Sequence[Document]) -> np.ndarray:
        """Documents encoded as ``title + " " + text`` with the encoder's ``doc_prefix``."""
        return self.encode([d.contents for d in docs], self.options.get("doc_prefix", ""))


def build_dense_index_on_ray(stage: Any, settings: RaySettings | None = None, *,
                             show_progress: bool = True) -> Any:
    """The corpus index of a :class:`~rankkit.retrieve.dense.Dense` stage, encoded on Ray workers.

    A complete index already cached for the stage's configuration is loaded instead. Otherwise the
    corpus is encoded in blocks on Ray (each worker loads the encoder once) and one FAISS index is
    built from the vectors in corpus order, saved where the stage looks for it: a later pipeline
    with the same dense settings uses it without encoding again.
    """
    from rankkit.errors import IndexMissingError
    from rankkit.index.faiss import DenseIndex

    try:
        index = DenseIndex.load(stage.index_path, gpu=stage.config.gpu, nprobe=stage.config.nprobe,
                                ef_search=stage.config.ef_search)
        log.info("dense index already built: %s", stage.index_path)
        stage._index = index
        return index
    except IndexMissingError:
        pass
    cfg = stage.config
    options = {"model": cfg.model, "max_length": cfg.max_length, "batch_size": cfg.batch_size,
               "normalize": cfg.normalize, "device": cfg.device, "query_prefix": cfg.query_prefix,
               "doc_prefix": cfg.doc_prefix, "precision": cfg.precision, "backend": cfg.backend}
    with RayEncoder(options, settings or RaySettings(block_size=1024), show_progress=show_progress) as encoder:
        return stage.build_index(encode_docs=encoder.encode_docs)
