"""The cross-encoder rerank stage: rescore the top of an incoming run with a cross-encoder.

``CrossEncoder(dataset, model="path/to/trained")`` takes the top ``depth`` candidates
of each query from the incoming run, fetches their text from the dataset, scores
every (query, ``title + " " + text``) pair with a :class:`CrossEncoderModel` and
returns a run of those candidates (the rest are cut). With ``interpolate`` the
output score is ``w * minmax(CE) + (1 - w) * minmax(first stage)`` per query;
``interpolate: auto`` takes the weight that training chose on its dev queries
(stored in the model's ``rankkit_ce.json``). Registered as the YAML stage
``cross_encoder``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankkit.config import from_mapping
from rankkit.errors import ConfigError
from rankkit.models import model_identity, resolve_model
from rankkit.pipeline import Stage, register_stage
from rankkit.rerank.interpolate import interpolate
from rankkit.types import Query, Run

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.rerank.ce_model import CrossEncoderModel

log = logging.getLogger(__name__)


@dataclass
class CrossEncoderConfig:
    """Options of the cross-encoder stage (Python, YAML and CLI share them).

    ``model`` is a rankkit-trained folder, a merged folder or any HF
    sequence-classification model id/path; ``base`` overrides the base model of a
    LoRA folder; ``depth`` candidates per query are rescored; ``max_length``
    defaults to the model's own; ``interpolate`` is ``None`` (CE scores only), a
    weight in [0, 1] or ``"auto"``; ``dtype`` is ``auto`` (bf16 on CUDA, fp32 on CPU),
    ``fp32``, ``bf16`` or ``fp16``.
    """

    model: str = ""
    base: str | None = None
    depth: int = 100
    batch_size: int = 64
    max_length: int | None = None
    interpolate: float | str | None = None
    device: str = "auto"
    dtype: str = "auto"
    show_progress: bool = True
    cache_dir: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model is required (a trained rankkit folder or an HF sequence-classification model)")
        if self.depth < 1 or self.batch_size < 1:
            raise ValueError("depth and batch_size must be >= 1")
        w = self.interpolate
        if w is not None and w != "auto" and not (isinstance(w, (int, float)) and 0 <= w <= 1):
            raise ValueError(f"interpolate must be null, 'auto' or a weight in [0, 1], got {w!r}")


class CrossEncoder(Stage):
    """Cross-encoder reranker stage (see the module docstring).

    ``CrossEncoder(dataset, model=..., depth=...)`` takes :class:`CrossEncoderConfig`
    options as keywords; a loaded :class:`CrossEncoderModel` can be passed as
    ``scorer=`` to skip loading.
    """

    def __init__(self, dataset: Dataset | None = None, config: CrossEncoderConfig | None = None, *,
                 scorer: CrossEncoderModel | None = None, **options: Any) -> None:
        if config is not None and options:
            raise ConfigError("give CrossEncoder either a config or keyword options, not both")
        if config is None:
            if scorer is not None and "model" not in options:
                options["model"] = scorer.base
            config = from_mapping(CrossEncoderConfig, options, "CrossEncoder")
        self.config = config
        self.dataset = dataset
        self.name = config.name or "cross-encoder"
        self._scorer = scorer
        if config.cache_dir:
            self.cache_dir = Path(config.cache_dir)

    def __repr__(self) -> str:
        return f"CrossEncoder(model={self.config.model!r}, depth={self.config.depth})"

    @property
    def scorer(self) -> CrossEncoderModel:
        """The scoring model, loaded on first use."""
        if self._scorer is None:
            from rankkit.rerank.ce_model import CrossEncoderModel

            self._scorer = CrossEncoderModel.load(self.config.model, base=self.config.base,
                                                  max_length=self.config.max_length)
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

    def cache_spec(self) -> dict[str, Any] | None:
        # Whole outputs are not cached: the raw CE scores are (see ``_raw_scores``), so runs
        # that differ only in ``interpolate`` share one scoring pass.
        return None

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        if run is None:
            raise ConfigError(f"{self.name}: a cross-encoder reranks an incoming run; put it after a retriever")
        if self.dataset is None:
            raise ConfigError(f"{self.name}: needs the dataset to fetch document texts (CrossEncoder(dataset, ...))")
        top = run.top_k(self.config.depth)
        texts = {q.qid: q.text for q in queries}
        missing = [qid for qid in top if qid not in texts]
        if missing:
            log.warning("%s: %d queries of the incoming run have no query text; they are dropped",
                        self.name, len(missing))
        top = Run({qid: top[qid] for qid in top if qid in texts}, name=run.name)
        reranked = self._raw_scores(texts, top)
        w = self.weight()
        return reranked if w is None else interpolate(top, reranked, w, name=self.name)

    def _raw_scores(self, texts: dict[str, str], top: Run) -> Run:
        """CE scores of every candidate in ``top`` (cached under ``cache_dir`` when set)."""
        path = None
        if self.cache_dir is not None:
            cfg = self.config
            spec = {"model": model_identity(resolve_model(cfg.model)), "base": cfg.base, "max_length": cfg.max_length,
                    "dtype": cfg.dtype, "run": top.fingerprint(),
                    "queries": sorted((q, texts[q]) for q in top)}
            key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]
            path = Path(self.cache_dir) / "cross-encoder" / f"{key}.trec"
            if path.exists():
                log.info("%s: cached cross-encoder scores %s", self.name, path)
                return Run.from_trec(path, name=self.name)
        wanted = list(dict.fromkeys(d for qid in top for d in top[qid]))
        found = self.dataset.docs(wanted)
        pairs = [(qid, d) for qid in top for d in top[qid]]
        scores = self.scorer.score([texts[q] for q, _ in pairs], [found[d].contents for _, d in pairs],
                                   batch_size=self.config.batch_size, max_length=self.config.max_length,
                                   device=self.config.device, dtype=self.config.dtype,
                                   show_progress=self.config.show_progress)
        out: dict[str, dict[str, float]] = {qid: {} for qid in top}
        for (qid, d), s in zip(pairs, scores):
            out[qid][d] = float(s)
        reranked = Run(out, name=self.name)
        if path is not None:
            reranked.to_trec(path, tag="cross-encoder")
        return reranked


@register_stage("cross_encoder", CrossEncoderConfig)
def _ce_from_config(cfg: CrossEncoderConfig, dataset: Any, overrides: dict[str, Any]) -> CrossEncoder:
    return CrossEncoder(dataset, cfg)
