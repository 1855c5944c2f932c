"""The cross-encoder rerank stage: rescore the top of an incoming run with a cross-encoder.

``CrossEncoder(dataset, model="path/to/trained")`` takes the top ``depth`` candidates
of each query from the incoming run, fetches their text from the dataset, scores
every (query, ``title + " " + text``) pair with a :class:`CrossEncoderModel` and
returns a run of those candidates, followed by the incoming run's other documents in
their first-stage order, scored below every reranked one (``keep_tail: false`` cuts
them). With ``interpolate`` the head's score is
``w * minmax(CE) + (1 - w) * minmax(first stage)`` per query (the tail still sits below it);
``interpolate: auto`` takes the weight that training chose on its dev queries
(stored in the model's ``rankkit_ce.json``). Registered as the YAML stage
``cross_encoder``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from rankkit.backends import resolve as resolve_backend
from rankkit.cache import RunCache
from rankkit.config import Backend, InferencePrecision, PositiveInt, Probability
from rankkit.errors import ConfigError
from rankkit.models import (
    loading_progress,
    model_identity,
    resolve_device,
    resolve_model,
)
from rankkit.pipeline import PathStr, short_repr
from rankkit.rerank.base import Reranker, RerankerOptions, register_reranker
from rankkit.rerank.interpolate import interpolate
from rankkit.types import Run

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.rerank.ce_model import CrossEncoderModel

log = logging.getLogger(__name__)

_MODEL = "given: a trained rankkit folder or an HF sequence-classification model id or path"


@dataclass
class CrossEncoderConfig(RerankerOptions):
    """Options of the cross-encoder stage (Python, YAML and CLI share them).

    ``model`` is a rankkit-trained folder, a merged folder or any HF
    sequence-classification model id/path; ``base`` overrides the base model of a
    LoRA folder; ``depth`` candidates per query are rescored; ``max_length``
    defaults to the model's own; ``interpolate`` is ``None`` (CE scores only), a
    weight in [0, 1] or ``"auto"``. ``backend`` (``auto``, ``torch``, ``onnx``) and
    ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``, ``int8``) choose how pairs are scored
    (:mod:`rankkit.backends`: ``auto`` is bf16 torch on CUDA and the measured default on the CPU).
    The shared options are :class:`RerankerOptions`.
    """

    model: Annotated[str, Field(min_length=1, max_length=4096, description=_MODEL)] = ""
    base: PathStr | None = None
    max_length: PositiveInt | None = None
    interpolate: Probability | Literal["auto"] | None = None
    backend: Backend = "auto"
    precision: InferencePrecision = "auto"

    def __post_init__(self) -> None:
        if not self.model:  # before the field checks, which would only say "a non-empty string"
            raise ValueError("model is required (a trained rankkit folder or an HF sequence-classification model)")
        super().__post_init__()
        from rankkit.backends import check_pair

        check_pair(self.backend, self.precision)
        w = self.interpolate
        if w is not None and w != "auto" and not (isinstance(w, (int, float)) and not isinstance(w, bool)
                                                  and 0 <= w <= 1):
            raise ValueError(f"interpolate must be null, 'auto' or a weight in [0, 1], got {short_repr(w)}")


class CrossEncoder(Reranker):
    """Cross-encoder reranker stage (see the module docstring).

    ``CrossEncoder(dataset, model=..., depth=...)`` takes :class:`CrossEncoderConfig`
    options as keywords; a loaded :class:`CrossEncoderModel` can be passed as
    ``scorer=`` to skip loading.
    """

    kind = "cross-encoder"
    config_class = CrossEncoderConfig
    config: CrossEncoderConfig

    def __init__(self, dataset: Dataset | None = None, config: CrossEncoderConfig | None = None, *,
                 scorer: CrossEncoderModel | None = None, **options: Any) -> None:
        if config is None and scorer is not None and "model" not in options:
            options["model"] = scorer.base
        super().__init__(dataset, config, **options)
        self._scorer = scorer

    def __repr__(self) -> str:
        return f"CrossEncoder(model={self.config.model!r}, depth={self.config.depth})"

    @property
    def scorer(self) -> CrossEncoderModel:
        """The scoring model, loaded on first use (a LoRA adapter merged into the weights: inference only)."""
        if self._scorer is None:
            from rankkit.rerank.ce_model import CrossEncoderModel

            with loading_progress(self.config.show_progress):
                self._scorer = CrossEncoderModel.load(self.config.model, base=self.config.base,
                                                      max_length=self.config.max_length, merge=True)
        return self._scorer

    def weight(self) -> float | None:
        """The interpolation weight in use (``auto`` resolved from the model folder)."""
        w = self.config.interpolate
        if w != "auto":
            return None if w is None else float(w)
        tuned = (self.scorer.meta.get("interpolation") or {}).get("weight")
        if tuned is None:
            raise ConfigError(f"{self.config.model}: interpolate: auto needs a weight chosen on dev queries during "
                              "training, and this model has none; give a number instead")
        return float(tuned)

    def rescore(self, top: Run, texts: dict[str, str]) -> Run:
        # Whole outputs are not cached: the raw CE scores are, so runs that differ only in
        # ``interpolate`` share one scoring pass.
        if self.cache_dir is None:
            return super().rescore(top, texts)
        cfg = self.config
        cache = RunCache(self.cache_dir, "cross-encoder")
        spec = {"model": model_identity(resolve_model(cfg.model)), "base": cfg.base, "max_length": cfg.max_length,
                "precision": cfg.precision, "run": top.fingerprint(), "queries": sorted(texts.items())}
        if cfg.backend != "torch" or cfg.precision == "int8":  # keys of torch-scored caches stay valid
            spec["backend"] = list(resolve_backend(cfg.backend, cfg.precision, resolve_device(cfg.device)))
        cached = cache.load(spec, self.name)
        if cached is not None:
            return cached
        reranked = super().rescore(top, texts)
        cache.save(spec, reranked, tag="cross-encoder")
        return reranked

    def score(self, queries: dict[str, str], candidates: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        docs = self.doc_texts(list(dict.fromkeys(d for ds in candidates.values() for d in ds)))
        pairs = [(qid, d) for qid, ds in candidates.items() for d in ds]
        c = self.config
        scores = self.scorer.score([queries[q] for q, _ in pairs], [docs[d] for _, d in pairs],
                                   batch_size=c.batch_size, max_length=c.max_length, device=c.device,
                                   precision=c.precision, show_progress=c.show_progress, backend=c.backend)
        out: dict[str, dict[str, float]] = {qid: {} for qid in candidates}
        for (qid, d), s in zip(pairs, scores):
            out[qid][d] = float(s)
        return out

    def finish(self, top: Run, reranked: Run) -> Run:
        w = self.weight()
        return reranked if w is None else interpolate(top, reranked, w, name=self.name)


register_reranker("cross_encoder", CrossEncoder)
