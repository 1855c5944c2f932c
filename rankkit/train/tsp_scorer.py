"""The training loop's scorer for TSPRank (``model.kind: tsprank``): a pairwise head over frozen embeddings.

TSPRank (Li et al., KDD 2025, arXiv 2411.12064). Each training group (a whole candidate
list, ``groups.mode: candidates``) becomes ``[n, F]`` candidate features
(:func:`rankkit.rerank.tsprank.candidate_features`: embeddings of the frozen ``model.name``
encoder, cached per text, and the first stage's scores); the model
(:class:`~rankkit.rerank.tsp_model.TSPRankModel`) is small and trained whole at ``lr``.
Dev evaluation reranks with the ``tsprank`` stage, decoding paths as at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rankkit.errors import ConfigError
from rankkit.rerank.tsp_model import (
    CONFIG_FILE,
    EmbeddingCache,
    TSPRankModel,
    shared_cache,
)
from rankkit.rerank.tsprank import TSPRank, candidate_features
from rankkit.train.scorers import Scorer, group_tensors
from rankkit.types import Run, TrainingGroup

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.train.config import TrainConfig


class TSPRankScorer(Scorer):
    """:class:`TSPRankModel` in the training loop (see the module docstring)."""

    kind = "tsprank"
    config_file = CONFIG_FILE

    def __init__(self, model: nn.Module, max_length: int, cache: EmbeddingCache | None = None) -> None:
        super().__init__(model, max_length)
        s = model.settings  # type: ignore[attr-defined]
        self.cache = cache or shared_cache(s.encoder, s.max_length)

    @classmethod
    def model_class(cls) -> Any:
        return TSPRankModel

    @classmethod
    def new_model(cls, cfg: TrainConfig) -> Any:
        s = cfg.model.tsp
        assert s is not None  # ModelSettings fills it for kind tsprank
        cache = shared_cache(s.encoder, s.max_length, cfg.eval_batch_size, cfg.device)
        return TSPRankModel.new(s, cache.dim, seed=cfg.seed)

    @classmethod
    def build(cls, cfg: TrainConfig) -> Scorer:
        m = cfg.model
        model = TSPRankModel.load(m.init_from) if m.init_from else cls.new_model(cfg)
        model.train()
        s = model.settings
        return cls(model, s.max_length, shared_cache(s.encoder, s.max_length, cfg.eval_batch_size, cfg.device))

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        model = TSPRankModel.load(str(path))
        return cls(model, model.settings.max_length)

    def is_head(self, name: str) -> bool:
        return False  # the whole (small) model trains at lr

    def features(self, group: TrainingGroup) -> np.ndarray:
        """``[n, F]`` features of one group's candidates."""
        s = self.model.settings  # type: ignore[attr-defined]
        scores = np.asarray(group.scores, dtype=np.float64) if group.scores else None
        if "score" in s.features and scores is None:
            raise ConfigError("TSPRank's 'score' feature needs the first stage's scores: train on candidate "
                              "lists (data.groups.mode: candidates)")
        return candidate_features(list(s.features), self.cache.get([group.query.text])[0],
                                  self.cache.get([d.contents for d in group.docs]), scores)

    def collate(self, batch: Sequence[TrainingGroup]) -> dict[str, Any]:
        out = group_tensors(batch)
        self.cache.add([g.query.text for g in batch] + [d.contents for g in batch for d in g.docs])
        out["features"] = torch.from_numpy(np.stack([self.features(g) for g in batch]))
        return out

    def forward(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, None]:
        return module(batch["features"].to(device)), None

    def score_range(self, module: nn.Module, batch: dict[str, Any], device: torch.device, start: int,
                    stop: int) -> torch.Tensor:
        raise ConfigError("forward_chunk does not apply to model.kind tsprank")

    def rerank(self, dataset: Dataset, run: Run, depth: int, batch_size: int, device: str) -> Run:
        stage = TSPRank(dataset, tsp_model=self.model, cache=self.cache,  # type: ignore[arg-type]
                        depth=depth, keep_tail=False, show_progress=False, batch_size=batch_size, device=device,
                        decoder=self.model.settings.decoder,  # type: ignore[attr-defined]
                        time_limit=self.model.settings.time_limit)  # type: ignore[attr-defined]
        return stage(dataset.queries, run)
