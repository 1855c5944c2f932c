"""The trainable scorers of the training loop: cross-encoders and bi-encoders behind one small protocol.

:class:`Scorer` is what :mod:`rankkit.train.loop` needs from a model: build it from a
:class:`TrainConfig` (fresh, or continued from a saved folder, with LoRA when asked),
split its parameters into the encoder/adapter group and the head group, collate a batch
of :class:`TrainingGroup` s, score a collated batch (``[G, n]`` scores, plus in-batch
scores ``[G, G*n]`` where the architecture gives them), rerank a dev run with the
matching inference stage, and save/load. A new trainable architecture (e.g. TSPRank's
pairwise head) is one more subclass registered in :data:`SCORERS`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from rankkit.errors import ConfigError
from rankkit.types import Run, TrainingGroup

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.train.config import TrainConfig

_NEG = -1e4  # masked in-batch logit (finite, so 0 * log_softmax stays 0)


def group_tensors(batch: Sequence[TrainingGroup]) -> dict[str, torch.Tensor]:
    """Labels, curriculum difficulty and per-sample weights ``[G, n]`` of equal-size groups."""
    sizes = {len(g.docs) for g in batch}
    if len(sizes) != 1:
        raise ValueError(f"groups in a batch must have the same size, got sizes {sorted(sizes)}")
    n = sizes.pop()
    out = {"labels": torch.tensor([list(g.labels) for g in batch], dtype=torch.float32),
           "difficulty": torch.tensor([list(g.difficulty) or [0.0] * n for g in batch], dtype=torch.float32)}
    if any(g.weights for g in batch):
        out["sample_weights"] = torch.tensor([list(g.weights) or [1.0] * n for g in batch], dtype=torch.float32)
    return out


def _rows(features: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    """Rows ``start:stop`` of tokenised features, trimmed to their own longest sequence."""
    rows = {k: v[start:stop] for k, v in features.items()}
    mask = rows.get("attention_mask")
    if mask is not None and mask.numel() and mask.dim() == 2 and bool(mask[:, -1].eq(0).all()):
        width = int(mask.any(0).nonzero().max()) + 1  # right padding: drop the columns no row uses
        rows = {k: v[:, :width] for k, v in rows.items()}
    return rows


class Scorer(abc.ABC):
    """A trainable scoring model for the training loop (:mod:`rankkit.train.loop`; see the module docstring)."""

    kind: ClassVar[str] = ""
    config_file: ClassVar[str] = ""
    supports_interpolation: ClassVar[bool] = False

    def __init__(self, model: nn.Module, max_length: int) -> None:
        self.model = model
        self.max_length = max_length

    @classmethod
    @abc.abstractmethod
    def model_class(cls) -> Any:
        """The model class (an :class:`~rankkit.hf_encoder.EncoderModel` with ``load``)."""

    @classmethod
    @abc.abstractmethod
    def new_model(cls, cfg: TrainConfig) -> Any:
        """An untrained model as ``cfg.model`` says."""

    @classmethod
    def build(cls, cfg: TrainConfig) -> Scorer:
        """A fresh (or ``model.init_from``-continued) model as ``cfg`` says, LoRA added when enabled."""
        m = cfg.model
        if m.init_from:
            model = cls.model_class().load(m.init_from, trainable=True, max_length=m.max_length)
        else:
            model = cls.new_model(cfg)
        if cfg.lora.enabled and not model.is_peft:
            model.add_lora(cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
        return cls(model, m.max_length)

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        """A saved model folder (to finish with the best dev checkpoint)."""
        model = cls.model_class().load(str(path))
        return cls(model, model.max_length)

    @abc.abstractmethod
    def is_head(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to the head (trained at ``head_lr``)."""

    @abc.abstractmethod
    def collate(self, batch: Sequence[TrainingGroup]) -> dict[str, Any]:
        """Tokenised features plus :func:`group_tensors` of a batch of groups."""

    @abc.abstractmethod
    def forward(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor,
                                                                                              torch.Tensor | None]:
        """Scores ``[G, n]`` and in-batch scores ``[G, G*n]`` (or ``None``) through ``module`` (the prepared model)."""

    @abc.abstractmethod
    def score_range(self, module: nn.Module, batch: dict[str, Any], device: torch.device, start: int,
                    stop: int) -> torch.Tensor:
        """Scores of the batch's pairs ``start:stop`` in group-major order (``forward_chunk``), ``[stop - start]``."""

    @abc.abstractmethod
    def rerank(self, dataset: Dataset, run: Run, depth: int, batch_size: int, device: str) -> Run:
        """Rerank the top ``depth`` of ``run`` with the inference stage of this kind (dev evaluation)."""

    @property
    def meta(self) -> dict[str, Any]:
        """The model's metadata, saved with it."""
        return self.model.meta  # type: ignore[return-value]

    def save(self, path: str | Path) -> Path:
        """Write the model folder atomically."""
        return self.model.save(path)  # type: ignore[operator,no-any-return]

    def param_groups(self, lr: float, head_lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: encoder/adapter at ``lr``, head at ``head_lr``; no decay on biases, norms and scalars."""
        head, body = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (head if self.is_head(name) else body).append(p)
        groups = []
        for params, rate in ((body, lr), (head, head_lr)):
            groups += [{"params": [p for p in params if p.ndim > 1], "lr": rate, "weight_decay": weight_decay},
                       {"params": [p for p in params if p.ndim <= 1], "lr": rate, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]


class CrossEncoderScorer(Scorer):
    """:class:`~rankkit.rerank.ce_model.CrossEncoderModel`: each (query, document) pair read together."""

    kind = "cross_encoder"
    config_file = "rankkit_ce.json"
    supports_interpolation = True

    @classmethod
    def model_class(cls) -> Any:
        from rankkit.rerank.ce_model import CrossEncoderModel

        return CrossEncoderModel

    @classmethod
    def new_model(cls, cfg: TrainConfig) -> Any:
        return cls.model_class().new(cfg.model.name, head=cfg.model.head or "mean", max_length=cfg.model.max_length,
                                     seed=cfg.seed)

    def is_head(self, name: str) -> bool:
        return name.startswith("linear.") or ".modules_to_save." in name

    def collate(self, batch: Sequence[TrainingGroup]) -> dict[str, Any]:
        out = group_tensors(batch)
        queries = [g.query.text for g in batch for _ in g.docs]
        docs = [d.contents for g in batch for d in g.docs]
        out["features"] = dict(self.model.tokenizer(queries, docs, truncation=True, max_length=self.max_length,
                                                    padding=True, return_tensors="pt"))
        return out

    def forward(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, None]:
        feats = {k: v.to(device) for k, v in batch["features"].items()}
        return module(**feats).view(batch["labels"].shape), None

    def score_range(self, module: nn.Module, batch: dict[str, Any], device: torch.device, start: int,
                    stop: int) -> torch.Tensor:
        feats = _rows(batch["features"], start, stop)
        return module(**{k: v.to(device) for k, v in feats.items()}).view(-1)

    def rerank(self, dataset: Dataset, run: Run, depth: int, batch_size: int, device: str) -> Run:
        from rankkit.rerank.cross_encoder import CrossEncoder

        # keep_tail=False: the dev run holds the reranked candidates only; the interpolation weight
        # is chosen on it (select_weight min-max normalises over every document of the run).
        stage = CrossEncoder(dataset, scorer=self.model, depth=depth, batch_size=batch_size, device=device,
                             show_progress=False, keep_tail=False)
        return stage(dataset.queries, run)


class BiEncoderScorer(Scorer):
    """:class:`~rankkit.retrieve.bi_encoder.BiEncoderModel`: queries and documents embedded apart, scored by similarity."""

    kind = "bi_encoder"
    config_file = "rankkit_bi.json"

    @classmethod
    def model_class(cls) -> Any:
        from rankkit.retrieve.bi_encoder import BiEncoderModel

        return BiEncoderModel

    @classmethod
    def new_model(cls, cfg: TrainConfig) -> Any:
        m = cfg.model
        return cls.model_class().new(m.name, pooling=m.pooling or "mean", normalize=bool(m.normalize),
                                     temperature=float(m.temperature or 0.05),
                                     learn_temperature=bool(m.learn_temperature), max_length=m.max_length)

    @classmethod
    def build(cls, cfg: TrainConfig) -> Scorer:
        scorer = super().build(cfg)
        scorer.model.log_temperature.requires_grad_(bool(cfg.model.learn_temperature))
        return scorer

    def is_head(self, name: str) -> bool:
        return name == "log_temperature"

    def collate(self, batch: Sequence[TrainingGroup]) -> dict[str, Any]:
        out = group_tensors(batch)
        tok = self.model.tokenizer

        def enc(texts: list[str]) -> dict[str, torch.Tensor]:
            return dict(tok(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"))

        out["queries"] = enc([g.query.text for g in batch])
        out["docs"] = enc([d.contents for g in batch for d in g.docs])
        # Documents of other groups known to be relevant to a query (another group of the same
        # query, or the same document) are no in-batch negatives for it.
        relevant = [{d.docid for h in batch if h.query.qid == g.query.qid
                     for d, y in zip(h.docs, h.labels) if y > 0} for g in batch]
        n = len(batch[0].docs)
        mask = torch.zeros(len(batch), len(batch) * n, dtype=torch.bool)
        for gi, rel in enumerate(relevant):
            for hi, h in enumerate(batch):
                if hi != gi:
                    for di, d in enumerate(h.docs):
                        mask[gi, hi * n + di] = d.docid in rel
        out["in_batch_mask"] = mask
        return out

    def forward(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
        q = {k: v.to(device) for k, v in batch["queries"].items()}
        d = {k: v.to(device) for k, v in batch["docs"].items()}
        sims = module(q, d)  # [G, G*n]
        G, n = batch["labels"].shape
        own = torch.arange(G, device=sims.device).unsqueeze(1) * n + torch.arange(n, device=sims.device)
        scores = sims.gather(1, own)
        return scores, sims.masked_fill(batch["in_batch_mask"].to(sims.device), _NEG)

    def score_range(self, module: nn.Module, batch: dict[str, Any], device: torch.device, start: int,
                    stop: int) -> torch.Tensor:
        n = batch["labels"].shape[1]
        q = {k: v.to(device) for k, v in batch["queries"].items()}
        d = {k: v.to(device) for k, v in _rows(batch["docs"], start, stop).items()}
        sims = module(q, d)  # [G, stop - start]
        owner = torch.arange(start, stop, device=sims.device) // n
        return sims.gather(0, owner.unsqueeze(0)).view(-1)

    def rerank(self, dataset: Dataset, run: Run, depth: int, batch_size: int, device: str) -> Run:
        from rankkit.retrieve.dense import Dense, Encoder

        encoder = Encoder.from_model(self.model, batch_size=batch_size, device=device)
        stage = Dense(dataset, rerank="always", encode_candidates=True, show_progress=False, encoder=encoder)
        return stage(dataset.queries, run.top_k(depth))


SCORERS: dict[str, type[Scorer]] = {cls.kind: cls for cls in (CrossEncoderScorer, BiEncoderScorer)}


def scorer_class(kind: str) -> type[Scorer]:
    """The scorer class of ``model.kind``."""
    if kind == "tsprank" and kind not in SCORERS:  # registered on first use (its module imports the solvers)
        from rankkit.train.tsp_scorer import TSPRankScorer

        SCORERS[kind] = TSPRankScorer
    if kind not in SCORERS:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of {', '.join(SCORERS)}")
    return SCORERS[kind]
