"""Bi-encoder models that rankkit trains: shared-weight query and document towers over any HF encoder.

Both towers are one encoder: a text's embedding is its pooled token states (mean over
real tokens by default, as all-MiniLM-L6-v2 was trained with sentence-transformers, or
the first token), L2-normalised when ``normalize`` (cosine similarity). A query-document
score is ``similarity / temperature``; the temperature is fixed or learned (its log is
a parameter). Rankings at inference only depend on the similarity.

A trained model is a folder: ``rankkit_bi.json`` (base model and its content
fingerprint, pooling, normalisation, temperature, max length), the tokenizer, and either
``adapter/`` (a peft LoRA adapter) or the full encoder weights. The dense stage loads such
a folder as its encoder (:class:`rankkit.retrieve.dense.Encoder`), both to retrieve from a
FAISS index and to rerank; its index cache is keyed by the folder's content, adapter included.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rankkit.errors import ConfigError
from rankkit.hf_encoder import (
    EncoderModel,
    check_kind,
    load_backbone,
    new_backbone,
    pool,
    read_meta,
    sorted_inference,
)
from rankkit.models import model_fingerprint, resolve_device, resolve_model

log = logging.getLogger(__name__)

CONFIG_FILE = "rankkit_bi.json"
POOLINGS = ("mean", "cls")
_ST = "sentence_transformers.models."


def st_as_bi_encoder(path: str, max_length: int, fallback: bool = False) -> BiEncoderModel | None:
    """A sentence-transformers model folder (or a plain HF encoder) as an equivalent :class:`BiEncoderModel`.

    Only the common shape is taken: ``Transformer`` -> ``Pooling`` (mean or CLS) ->
    optional ``Normalize`` (all-MiniLM-L6-v2 and most retrieval models); no
    ``modules.json`` means a plain HF encoder, which sentence-transformers mean-pools.
    Anything else raises :class:`ConfigError` naming the module, or with ``fallback``
    logs it at WARNING and returns ``None`` (the caller then uses sentence-transformers).
    """
    folder = Path(path)
    pooling, normalize = "mean", False
    try:
        modules = json.loads((folder / "modules.json").read_text()) if (folder / "modules.json").is_file() else []
        kinds = [m["type"].removeprefix(_ST) for m in modules]
        if modules and (kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"])):
            raise ConfigError(f"{path}: modules {' -> '.join(kinds)} (supported: Transformer -> Pooling -> "
                              "optional Normalize)")
        if modules:
            cfg = json.loads((folder / modules[1]["path"] / "config.json").read_text())
            modes = [k.removeprefix("pooling_mode_").removesuffix("_tokens").removesuffix("_token")
                     for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
            if modes not in (["mean"], ["cls"]):
                raise ConfigError(f"{path}: pooling {'+'.join(modes) or 'none'} (supported: mean or cls)")
            pooling, normalize = modes[0], kinds[2:] == ["Normalize"]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        exc = exc if isinstance(exc, ConfigError) else ConfigError(f"{path}: unreadable sentence-transformers "
                                                                    f"config ({exc})")
        if not fallback:
            raise ConfigError(f"backend onnx cannot run this model: {exc}; use backend: torch") from None
        log.warning("backend auto: %s; encoding with sentence-transformers (torch) instead", exc)
        return None
    return BiEncoderModel.new(path, pooling=pooling, normalize=normalize, max_length=max_length)


def is_bi_encoder_folder(path: str) -> bool:
    """Whether ``path`` is a folder written by :meth:`BiEncoderModel.save`."""
    return (Path(path) / CONFIG_FILE).is_file()


class BiEncoderModel(EncoderModel):
    """A bi-encoder (see the module docstring): :meth:`embed` texts, :meth:`forward` scores query/document batches."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, *, base: str, base_fingerprint: str, pooling: str = "mean",
                 normalize: bool = True, temperature: float = 0.05, learn_temperature: bool = False,
                 max_length: int = 256, meta: dict[str, Any] | None = None) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature!r}")
        super().__init__(encoder, tokenizer, base=base, base_fingerprint=base_fingerprint, max_length=max_length,
                         meta=meta)
        self.pooling = pooling
        self.normalize = normalize
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)), requires_grad=learn_temperature)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def new(cls, base: str, *, pooling: str = "mean", normalize: bool = True, temperature: float = 0.05,
            learn_temperature: bool = False, max_length: int = 256) -> BiEncoderModel:
        """An untuned bi-encoder on ``base`` (any HF id or local path)."""
        encoder, tokenizer, path = new_backbone(base, pooled=True)
        return cls(encoder, tokenizer, base=base, base_fingerprint=model_fingerprint(path), pooling=pooling,
                   normalize=normalize, temperature=temperature, learn_temperature=learn_temperature,
                   max_length=max_length)

    @classmethod
    def load(cls, path_or_id: str, *, base: str | None = None, trainable: bool = False,
             max_length: int | None = None, merge: bool = False) -> BiEncoderModel:
        """Load a folder written by :meth:`save` (adapter or full weights); other folders raise :class:`ConfigError`.

        ``merge=True`` (inference) merges a LoRA adapter into the weights (faster, equal up to float rounding).
        """
        from transformers import AutoModel, AutoTokenizer

        folder = Path(resolve_model(path_or_id))
        check_kind(folder, CONFIG_FILE)
        if not (folder / CONFIG_FILE).is_file():
            raise ConfigError(f"{path_or_id}: not a rankkit bi-encoder folder (no {CONFIG_FILE}); "
                              "train one with `rankkit train reranker` and model.kind: bi_encoder")
        meta = read_meta(folder, CONFIG_FILE)
        encoder = load_backbone(folder, meta, AutoModel, base=base, trainable=trainable, pooled=True, merge=merge)
        model = cls(encoder, AutoTokenizer.from_pretrained(str(folder)), base=meta["base"],
                    base_fingerprint=meta.get("base_fingerprint", ""), pooling=meta.get("pooling", "mean"),
                    normalize=bool(meta.get("normalize", True)), temperature=float(meta.get("temperature", 1.0)),
                    learn_temperature=trainable and bool(meta.get("learn_temperature", False)),
                    max_length=max_length or int(meta.get("max_length", 256)), meta=meta)
        return model

    config_file = CONFIG_FILE

    @property
    def temperature(self) -> float:
        """The current similarity temperature."""
        return float(self.log_temperature.detach().exp())

    # --- scoring ------------------------------------------------------------------------

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings ``[batch, dim]`` of tokenised texts (pooled, normalised when ``normalize``)."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        pooled = pool(self.encoder(**kwargs).last_hidden_state, attention_mask, self.pooling)
        return nn.functional.normalize(pooled.float(), dim=-1) if self.normalize else pooled.float()

    def forward(self, queries: dict[str, torch.Tensor], docs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores ``[Q, D]`` of every tokenised query against every document: ``similarity / temperature``.

        One call embeds both sides, so data-parallel wrappers see a single forward per batch.
        """
        return self.similarity(self.embed(**queries), self.embed(**docs))

    def similarity(self, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Scores ``q @ d.T / temperature`` for embeddings ``[Q, dim]`` and ``[D, dim]``."""
        return q @ d.T / self.log_temperature.exp()

    def encode(self, texts: Sequence[str], batch_size: int = 64, max_length: int | None = None,
               device: str = "auto", precision: str = "auto", show_progress: bool = False,
               backend: str = "torch") -> np.ndarray:
        """Embeddings of ``texts`` as float32 ``[len(texts), dim]`` (length-sorted batches, input order).

        ``backend``/``precision`` follow :mod:`rankkit.backends`.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        dev = torch.device(resolve_device(device))
        self.to(dev).eval()
        enc = self.tokenizer(list(texts), truncation=True, max_length=max_length or self.max_length, padding=False)
        from rankkit.backends import inference_fn

        fn, precision = inference_fn(self, "embed", enc, backend, precision, dev)
        return sorted_inference(fn, self.tokenizer, enc, batch_size=batch_size, device=dev,
                                precision=precision, desc="bi-encoder", show_progress=show_progress)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.encoder.config.hidden_size)

    # --- saving -------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """The ``rankkit_bi.json`` content for this model."""
        meta = super().config_dict()
        meta.update({"kind": "bi_encoder", "pooling": self.pooling, "normalize": self.normalize,
                     "temperature": self.temperature, "learn_temperature": bool(self.log_temperature.requires_grad)})
        return meta
