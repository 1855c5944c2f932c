"""TSPRank's pairwise model and the frozen-embedding cache its features read from.

:class:`TSPRankModel` (Li et al., KDD 2025, arXiv 2411.12064) maps ``[G, n, F]`` candidate
features (:func:`rankkit.rerank.tsprank.candidate_features`) to ``[G, n, n]`` scores
``A[i, j]`` = "i comes immediately before j":

- an optional linear embedding to ``dim`` and ``layers`` transformer encoder layers over
  the candidate set (``h_i``);
- ``bilinear``: ``A_ij = h_i^T W h_j + b``;
- ``deep``: ``A_ij = v^T tanh(h_i^T W_k h_j + b_k)_k + c`` with ``deep_dim`` maps ``W_k``;
- ``separate``: two bilinear maps, one for the upper triangle (diagonal included), one
  for the strict lower triangle (the paper's code);
- ``pointwise``: ``[G, n]`` scores from an MLP over ``h_i`` (the baseline).

The diagonal of ``A`` means nothing (an item cannot follow itself); objectives and
decoders ignore it. A model folder holds ``rankkit_tsp.json`` (settings, input width,
metadata) and ``head.safetensors``; the text encoder stays frozen and is named, not copied.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rankkit.config import from_mapping
from rankkit.errors import ConfigError
from rankkit.rerank.tsprank import TSPHeadSettings, feature_dim

log = logging.getLogger(__name__)

CONFIG_FILE = "rankkit_tsp.json"
WEIGHTS_FILE = "head.safetensors"


class TSPRankModel(nn.Module):
    """Candidate features ``[G, n, F]`` to pairwise scores ``[G, n, n]`` (or ``[G, n]``; see the module docstring)."""

    config_file = CONFIG_FILE
    is_peft = False

    def __init__(self, settings: TSPHeadSettings, in_dim: int, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.in_dim = in_dim
        self.meta: dict[str, Any] = dict(meta or {})
        s = settings
        width = s.dim or in_dim
        self.embed: nn.Module = nn.Linear(in_dim, s.dim) if s.dim else nn.Identity()
        self.drop = nn.Dropout(s.dropout)
        self.encoder: nn.Module | None = None
        if s.layers:
            if width % s.attention_heads:
                raise ConfigError(f"model.tsp: width {width} is not divisible by attention_heads {s.attention_heads}")
            layer = nn.TransformerEncoderLayer(width, s.attention_heads, s.dim_ff, s.dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, s.layers, enable_nested_tensor=False)
        scale = width ** -0.5
        if s.head == "pointwise":
            self.mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
        elif s.head == "deep":
            self.W = nn.Parameter(torch.randn(s.deep_dim, width, width) * scale / width ** 0.5)
            self.b = nn.Parameter(torch.zeros(s.deep_dim))
            self.out = nn.Linear(s.deep_dim, 1)
        else:
            k = 2 if s.head == "separate" else 1
            self.W = nn.Parameter(torch.randn(k, width, width) * scale / width ** 0.5)
            self.b = nn.Parameter(torch.zeros(k))

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Candidate states ``h`` ``[G, n, width]`` (``mask`` ``[G, n]``: True for real candidates)."""
        h = self.drop(self.embed(x))
        if self.encoder is not None:
            h = self.encoder(h, src_key_padding_mask=None if mask is None else ~mask)
        return h

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pairwise scores ``[G, n, n]`` (pointwise head: ``[G, n]``) of features ``x`` ``[G, n, F]``."""
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ConfigError(f"TSPRank model expects features [groups, n, {self.in_dim}], got {list(x.shape)}")
        h = self.encode(x.float(), mask)
        head = self.settings.head
        if head == "pointwise":
            return self.mlp(h).squeeze(-1)
        # [G, k, n, n]: h_i^T W_k h_j for every map k
        pair = torch.einsum("gid,kde,gje->gkij", h, self.W, h) + self.b[None, :, None, None]
        if head == "bilinear":
            return pair[:, 0]
        if head == "deep":
            return self.out(torch.tanh(pair).permute(0, 2, 3, 1)).squeeze(-1)
        n = x.shape[1]
        upper = torch.ones(n, n, dtype=torch.bool, device=x.device).triu()
        return torch.where(upper, pair[:, 0], pair[:, 1])

    # --- persistence ----------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """What ``rankkit_tsp.json`` holds."""
        return {"kind": "tsprank", "settings": asdict(self.settings), "in_dim": self.in_dim, **self.meta}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model folder atomically."""
        from safetensors.torch import save_file

        from rankkit.trec import atomic_dir

        out = Path(path)
        with atomic_dir(out) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config_dict(), indent=2, default=str) + "\n")
        return out

    @classmethod
    def load(cls, path: str, **_: Any) -> TSPRankModel:
        """A model folder written by :meth:`save` (extra keywords, e.g. ``trainable``, are accepted and ignored)."""
        from safetensors.torch import load_file

        folder = Path(path)
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file():
            raise ConfigError(f"{folder}: not a TSPRank model folder (no {CONFIG_FILE}); train one with "
                              "`rankkit train reranker` and model.kind: tsprank")
        meta = json.loads(cfg_path.read_text())
        settings = from_mapping(TSPHeadSettings, meta.pop("settings"), f"{cfg_path} settings")
        in_dim = int(meta.pop("in_dim"))
        meta.pop("kind", None)
        model = cls(settings, in_dim, meta)
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        model.eval()
        return model

    @classmethod
    def new(cls, settings: TSPHeadSettings, embedding_dim: int, seed: int = 0) -> TSPRankModel:
        """A fresh model for ``settings`` over embeddings of ``embedding_dim`` (seeded initialisation)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return cls(settings, feature_dim(list(settings.features), embedding_dim))


class EmbeddingCache:
    """L2-normalised embeddings of texts by a frozen encoder, computed once per distinct text."""

    def __init__(self, encoder: str, max_length: int = 256, batch_size: int = 64, device: str = "auto") -> None:
        self.encoder_name, self.max_length = encoder, max_length
        self.batch_size, self.device = batch_size, device
        self._encoder: Any = None
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        """Embedding width."""
        return int(self._get_encoder().dim)

    def _get_encoder(self) -> Any:
        if self._encoder is None:
            from rankkit.retrieve.dense import Encoder

            self._encoder = Encoder(self.encoder_name, max_length=self.max_length, batch_size=self.batch_size,
                                    normalize=True, device=self.device)
        return self._encoder

    def add(self, texts: list[str], show_progress: bool = False) -> None:
        """Encode the texts not seen yet (longest first, in batches)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if not new:
            return
        from tqdm.auto import tqdm

        enc = self._get_encoder()
        step = max(self.batch_size * 16, 1)
        for i in tqdm(range(0, len(new), step), desc="embeddings", unit="chunk", disable=not show_progress):
            part = new[i:i + step]
            for t, v in zip(part, enc.encode(part)):
                self._vectors[t] = np.asarray(v, dtype=np.float32)

    def get(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), dim]`` embeddings (encoding any text not cached yet)."""
        self.add(texts)
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


_SHARED: dict[tuple[str, int], EmbeddingCache] = {}


def shared_cache(encoder: str, max_length: int, batch_size: int = 64, device: str = "auto") -> EmbeddingCache:
    """One :class:`EmbeddingCache` per (encoder, max_length) in this process (training and dev reranking share it)."""
    key = (encoder, max_length)
    if key not in _SHARED:
        _SHARED[key] = EmbeddingCache(encoder, max_length, batch_size, device)
    return _SHARED[key]
