"""Cross-encoder scoring models: an HF encoder read over (query, document) pairs.

Two heads are supported:

- ``head="mean"`` or ``"cls"``: the backbone is loaded as a plain encoder
  (``AutoModel``), its token states are pooled (mean over real tokens, the way
  all-MiniLM-L6-v2 was pretrained, or the first token) and a new linear layer maps
  the pooled vector to one score;
- ``head="hf"``: any ``AutoModelForSequenceClassification`` model, scoring with its
  own classifier (one logit; with two labels, the log-probability of label 1). This is
  what sentence-transformers' ``CrossEncoder`` loads, so published cross-encoders work
  as they are.

A trained model is a folder: ``rankkit_ce.json`` (head kind, base model and its
content fingerprint, max length, the tuned interpolation weight), the tokenizer,
``head.safetensors`` (pooled heads) and either ``adapter/`` (a peft LoRA adapter;
the base weights are not copied) or the full encoder weights at the top level. A
merged folder is a plain HF model (``AutoModel`` / ``AutoModelForSequenceClassification``)
plus the head file. :meth:`CrossEncoderModel.load` reads all of these, plain HF
models included. Scoring sorts pairs by length, pads each batch only to its own
longest pair, and runs under ``torch.inference_mode`` (bf16 autocast on CUDA).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rankkit.errors import ConfigError
from rankkit.models import model_fingerprint, resolve_device, resolve_model
from rankkit.trec import atomic_dir

log = logging.getLogger(__name__)

CONFIG_FILE = "rankkit_ce.json"
HEAD_FILE = "head.safetensors"
ADAPTER_DIR = "adapter"
HEADS = ("mean", "cls", "hf")


def _is_seqcls(path_or_id: str) -> bool:
    """Whether a model's config names a sequence-classification architecture."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path_or_id)
    return any(a.endswith("ForSequenceClassification") for a in (cfg.architectures or []))


class CrossEncoderModel(nn.Module):
    """A cross-encoder: ``forward(**batch)`` returns one relevance score per pair.

    Build a fresh one with :meth:`new`, read a saved or published one with
    :meth:`load`, add LoRA adapters with :meth:`add_lora`, write it with :meth:`save`
    and :meth:`merge`, and score text pairs with :meth:`score`.
    """

    def __init__(self, encoder: nn.Module, tokenizer: Any, *, head: str, base: str,
                 base_fingerprint: str, max_length: int = 256, linear: nn.Linear | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.head = head
        self.linear = linear
        self.base = base
        self.base_fingerprint = base_fingerprint
        self.max_length = max_length
        self.meta: dict[str, Any] = dict(meta or {})

    # --- construction -------------------------------------------------------------------

    @classmethod
    def new(cls, base: str, head: str = "mean", max_length: int = 256, seed: int = 0) -> CrossEncoderModel:
        """A model with an untrained head on top of ``base`` (any HF id or local path).

        ``head`` is ``"mean"``/``"cls"`` (new linear layer on pooled states) or ``"hf"``
        (``AutoModelForSequenceClassification`` with one label; its classifier is new
        unless ``base`` already is a sequence-classification model). ``seed`` fixes the
        head's initialisation.
        """
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        path = resolve_model(base)
        tokenizer = AutoTokenizer.from_pretrained(path)
        torch.manual_seed(seed)
        linear = None
        if head == "hf":
            encoder = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, use_safetensors=True)
        else:
            encoder = AutoModel.from_pretrained(path, use_safetensors=True, add_pooling_layer=False) \
                if _is_bert_like(path) else AutoModel.from_pretrained(path, use_safetensors=True)
            linear = nn.Linear(encoder.config.hidden_size, 1)
            nn.init.normal_(linear.weight, std=getattr(encoder.config, "initializer_range", 0.02))
            nn.init.zeros_(linear.bias)
        return cls(encoder, tokenizer, head=head, base=base, base_fingerprint=model_fingerprint(path),
                   max_length=max_length, linear=linear)

    @classmethod
    def load(cls, path_or_id: str, *, base: str | None = None, trainable: bool = False,
             max_length: int | None = None) -> CrossEncoderModel:
        """Load a rankkit folder, a merged folder or a published sequence-classification model.

        For a folder with a LoRA adapter the base model named in ``rankkit_ce.json``
        is loaded (or ``base``, which must have the same content fingerprint, else
        :class:`ConfigError`). ``trainable=True`` keeps the adapter trainable (to
        continue training). A plain HF encoder without a scoring head is refused.
        """
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(path_or_id)
        folder = Path(path)
        meta_file = folder / CONFIG_FILE
        if not meta_file.is_file():
            if not _is_seqcls(path):
                raise ConfigError(
                    f"{path_or_id}: not a cross-encoder (no {CONFIG_FILE} and no sequence-classification head); "
                    "train one with `rankkit train reranker` or give a sequence-classification model")
            tokenizer = AutoTokenizer.from_pretrained(path)
            encoder = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
            return cls(encoder, tokenizer, head="hf", base=str(path_or_id), base_fingerprint=model_fingerprint(path),
                       max_length=max_length or 512)
        try:
            meta = json.loads(meta_file.read_text())
            head = meta["head"]
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{meta_file}: unreadable rankkit cross-encoder config ({exc})") from None
        tokenizer = AutoTokenizer.from_pretrained(path)
        auto = AutoModelForSequenceClassification if head == "hf" else AutoModel
        adapter = folder / ADAPTER_DIR
        if adapter.is_dir():
            base_name = base or meta["base"]
            base_path = resolve_model(base_name)
            found = model_fingerprint(base_path)
            if found != meta.get("base_fingerprint"):
                raise ConfigError(
                    f"{folder}: the adapter was trained on base model {meta['base']!r} (fingerprint "
                    f"{meta.get('base_fingerprint')}), but {base_name!r} has fingerprint {found}: "
                    "load it with the base model it was trained on")
            kwargs = {"num_labels": 1} if head == "hf" else {}
            if head != "hf" and _is_bert_like(base_path):
                kwargs["add_pooling_layer"] = False
            from peft import PeftModel

            encoder = PeftModel.from_pretrained(auto.from_pretrained(base_path, use_safetensors=True, **kwargs),
                                                str(adapter), is_trainable=trainable)
        else:
            kwargs = {"add_pooling_layer": False} if head != "hf" and _is_bert_like(path) else {}
            encoder = auto.from_pretrained(path, use_safetensors=True, **kwargs)
        linear = None
        if head != "hf":
            from safetensors.torch import load_file

            state = load_file(str(folder / HEAD_FILE))
            linear = nn.Linear(state["weight"].shape[1], 1)
            linear.load_state_dict(state)
        return cls(encoder, tokenizer, head=head, base=meta["base"], base_fingerprint=meta.get("base_fingerprint", ""),
                   max_length=max_length or int(meta.get("max_length", 256)), linear=linear, meta=meta)

    # --- adapters -----------------------------------------------------------------------

    def add_lora(self, rank: int = 16, alpha: float = 32, dropout: float = 0.05,
                 target_modules: Sequence[str] = ("query", "key", "value", "dense")) -> None:
        """Wrap the encoder with a fresh peft LoRA adapter; the scoring head stays fully trainable."""
        from peft import LoraConfig, get_peft_model

        if self.is_peft:
            raise ConfigError("this model already has a LoRA adapter")
        modules_to_save = ["classifier", "score"] if self.head == "hf" else None
        cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                         bias="none", modules_to_save=modules_to_save)
        try:
            self.encoder = get_peft_model(self.encoder, cfg)
        except ValueError as exc:
            raise ConfigError(f"LoRA target_modules {list(target_modules)}: {exc}") from None

    @property
    def is_peft(self) -> bool:
        """Whether the encoder carries a peft adapter."""
        return hasattr(self.encoder, "peft_config")

    # --- scoring ------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``[batch]`` for tokenised pairs."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if self.head == "hf":
            logits = self.encoder(**kwargs).logits
            if logits.shape[-1] == 1:
                return logits[:, 0]
            return torch.log_softmax(logits.float(), dim=-1)[:, 1]
        states = self.encoder(**kwargs).last_hidden_state
        if self.head == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.linear(pooled.to(self.linear.weight.dtype))[:, 0]

    def tokenize(self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None) -> dict[str, Any]:
        """Tokenise pairs without padding (``longest_first`` truncation to ``max_length``)."""
        return self.tokenizer(list(queries), list(docs), truncation=True,
                              max_length=max_length or self.max_length, padding=False)

    def score(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 64,
              max_length: int | None = None, device: str = "auto", dtype: str = "auto",
              show_progress: bool = False) -> np.ndarray:
        """Score (query, doc) pairs; returns float32 scores in input order.

        Pairs are sorted by token length so each batch pads to its own longest pair.
        ``dtype="auto"`` is bf16 autocast on CUDA and fp32 elsewhere.
        """
        from tqdm.auto import tqdm

        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        dev = torch.device(resolve_device(device))
        self.to(dev).eval()
        enc = self.tokenize(queries, docs, max_length)
        order = np.argsort([-len(ids) for ids in enc["input_ids"]], kind="stable")
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        amp = _autocast_dtype(dev, dtype)
        out = np.empty(len(queries), dtype=np.float32)
        batches = range(0, len(order), batch_size)
        with torch.inference_mode():
            for start in tqdm(batches, desc="cross-encoder", unit="batch", disable=not show_progress):
                idx = order[start:start + batch_size]
                feats = self.tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
                feats = {k: v.to(dev) for k, v in feats.items()}
                with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                    out[idx] = self(**feats).float().cpu().numpy()
        return out

    # --- saving -------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """The ``rankkit_ce.json`` content for this model."""
        meta = dict(self.meta)
        meta.update({"format": 1, "head": self.head, "base": self.base, "base_fingerprint": self.base_fingerprint,
                     "max_length": self.max_length})
        return meta

    def save(self, path: str | os.PathLike[str], *, merged: bool = False) -> Path:
        """Write the model folder atomically (adapter + head, or full weights when ``merged``)."""
        from safetensors.torch import save_file

        out = Path(path)
        with atomic_dir(out) as tmp:
            meta = self.config_dict()
            encoder = self.encoder
            if self.is_peft and not merged:
                encoder.save_pretrained(str(tmp / ADAPTER_DIR))
            else:
                if self.is_peft:
                    encoder = _merged_copy(encoder)
                encoder.save_pretrained(str(tmp), safe_serialization=True)
                meta["merged_from_adapter"] = self.is_peft or meta.get("merged_from_adapter", False)
            self.tokenizer.save_pretrained(str(tmp))
            if self.linear is not None:
                save_file({k: v.detach().float().cpu().contiguous() for k, v in self.linear.state_dict().items()},
                          str(tmp / HEAD_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return out

    def merge(self, path: str | os.PathLike[str]) -> Path:
        """Write a copy with the LoRA update folded into the weights: a plain HF model (+ head file)."""
        return self.save(path, merged=True)


def _merged_copy(encoder: nn.Module) -> nn.Module:
    """The base model with the adapter merged in, leaving ``encoder`` itself untouched."""
    import copy

    return copy.deepcopy(encoder).merge_and_unload()


def _is_bert_like(path: str) -> bool:
    """Whether ``AutoModel`` for this config accepts ``add_pooling_layer`` (BERT family)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path).model_type in {"bert", "roberta", "xlm-roberta"}


def _autocast_dtype(device: torch.device, dtype: str) -> torch.dtype | None:
    """The autocast dtype for scoring: bf16/fp16 on CUDA when asked (or ``auto``), else none."""
    if dtype not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"dtype must be auto, fp32, bf16 or fp16, got {dtype!r}")
    if device.type != "cuda" or dtype == "fp32":
        return None
    return torch.float16 if dtype == "fp16" else torch.bfloat16
