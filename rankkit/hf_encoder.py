"""What the trainable encoder models share: loading a backbone with or without a LoRA adapter, saving it.

A rankkit model folder holds a JSON file naming its kind, the base model and the base's
content fingerprint, the tokenizer, and either ``adapter/`` (a peft LoRA adapter; the base
weights are not copied) or the full encoder weights at the top level. Both the
cross-encoder (:mod:`rankkit.rerank.ce_model`) and the bi-encoder
(:mod:`rankkit.retrieve.bi_encoder`) are saved and loaded through these functions, so the
adapter rules (fingerprint check, atomic writes, merging) are written once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from rankkit.errors import ConfigError
from rankkit.models import model_fingerprint, quiet_load_reports, resolve_model

ADAPTER_DIR = "adapter"
# file name -> (what the folder holds, which stage loads it)
KIND_FILES = {"rankkit_ce.json": ("a cross-encoder", "the cross_encoder stage (CrossEncoder)"),
              "rankkit_bi.json": ("a bi-encoder", "the dense stage (Dense)"),
              "rankkit_setwise.json": ("a setwise LLM adapter", "the setwise stage (adapter: ...)")}


def is_bert_like(path: str) -> bool:
    """Whether ``AutoModel`` for this config accepts ``add_pooling_layer`` (BERT family)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path).model_type in {"bert", "roberta", "xlm-roberta"}


def check_kind(folder: Path, expected: str) -> None:
    """Refuse a rankkit folder of another kind than ``expected`` (its JSON file name), naming the right stage."""
    for name, (what, stage) in KIND_FILES.items():
        if name != expected and (folder / name).is_file() and not (folder / expected).is_file():
            raise ConfigError(f"{folder}: this folder holds {what} ({name}); load it with {stage}")


def read_meta(folder: Path, config_file: str) -> dict[str, Any]:
    """The JSON metadata of a rankkit model folder; unreadable content raises :class:`ConfigError`."""
    path = folder / config_file
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or "base" not in meta:
            raise ValueError("no 'base' entry")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable rankkit model config ({exc})") from None
    return meta


def load_backbone(folder: Path, meta: dict[str, Any], auto: Any, *, base: str | None = None,
                  trainable: bool = False, merge: bool = False, **kwargs: Any) -> nn.Module:
    """The encoder of a rankkit folder: its full weights, or the base model plus its LoRA adapter.

    For an adapter the base named in ``meta`` is loaded (or ``base``, which must have the
    same content fingerprint, else :class:`ConfigError`). ``auto`` is the transformers Auto
    class; BERT-like backbones get ``add_pooling_layer=False`` when ``pooled`` is passed.
    ``merge`` (inference only) folds the adapter into the weights: the same scores up to
    float rounding, and no adapter matmuls (1.2x faster scoring for the demo cross-encoder,
    ``eval/results/backends.md``).
    """
    quiet_load_reports()
    adapter = folder / ADAPTER_DIR
    pooled = kwargs.pop("pooled", False)
    if not adapter.is_dir():
        if pooled and is_bert_like(str(folder)):
            kwargs["add_pooling_layer"] = False
        return auto.from_pretrained(str(folder), use_safetensors=True, **kwargs)
    base_name = base or meta["base"]
    base_path = resolve_model(base_name)
    found = model_fingerprint(base_path)
    if found != meta.get("base_fingerprint"):
        raise ConfigError(
            f"{folder}: the adapter was trained on base model {meta['base']!r} (fingerprint "
            f"{meta.get('base_fingerprint')}), but {base_name!r} has fingerprint {found}: "
            "load it with the base model it was trained on")
    if pooled and is_bert_like(base_path):
        kwargs["add_pooling_layer"] = False
    from peft import PeftModel

    model = PeftModel.from_pretrained(auto.from_pretrained(base_path, use_safetensors=True, **kwargs),
                                      str(adapter), is_trainable=trainable)
    if merge:
        if trainable:
            raise ConfigError("merge=True is for inference; a trainable adapter stays unmerged")
        return model.merge_and_unload()
    return model


def add_lora(encoder: nn.Module, rank: int, alpha: float, dropout: float, target_modules: Sequence[str],
             modules_to_save: list[str] | None = None) -> nn.Module:
    """``encoder`` wrapped with a fresh peft LoRA adapter (bad target modules: :class:`ConfigError`)."""
    from peft import LoraConfig, get_peft_model

    if hasattr(encoder, "peft_config"):
        raise ConfigError("this model already has a LoRA adapter")
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                     bias="none", modules_to_save=modules_to_save)
    try:
        return get_peft_model(encoder, cfg)
    except ValueError as exc:
        raise ConfigError(f"LoRA target_modules {list(target_modules)}: {exc}") from None


def save_backbone(encoder: nn.Module, tokenizer: Any, tmp: Path, *, merged: bool = False) -> bool:
    """Write the adapter (or, ``merged`` / no adapter, the full weights) and tokenizer into ``tmp``.

    Returns whether full weights were written from an adapter (a merge).
    """
    is_peft = hasattr(encoder, "peft_config")
    if is_peft and not merged:
        encoder.save_pretrained(str(tmp / ADAPTER_DIR))
    else:
        if is_peft:
            import copy

            encoder = copy.deepcopy(encoder).merge_and_unload()
        encoder.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    return is_peft and merged


def new_backbone(base: str, *, pooled: bool) -> tuple[nn.Module, Any, str]:
    """A fresh ``AutoModel`` encoder (no pooler for BERT-like models when ``pooled``), its tokenizer and path."""
    from transformers import AutoModel, AutoTokenizer

    quiet_load_reports()
    path = resolve_model(base)
    kwargs = {"add_pooling_layer": False} if pooled and is_bert_like(path) else {}
    return AutoModel.from_pretrained(path, use_safetensors=True, **kwargs), AutoTokenizer.from_pretrained(path), path


def pool(states: Any, attention_mask: Any, how: str) -> Any:
    """Pool token states ``[B, T, H]`` to ``[B, H]``: the first token (``cls``) or the mean over real tokens."""
    if how == "cls":
        return states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def sorted_inference(fn: Any, tokenizer: Any, enc: dict[str, Any], *, batch_size: int, device: Any,
                     precision: str = "auto", desc: str = "encode", show_progress: bool = False) -> Any:
    """Apply ``fn(**features)`` to every tokenised item of ``enc`` in length-sorted batches; float32, input order.

    Items are sorted by token count so each batch pads to its own longest item; runs under
    ``torch.inference_mode`` with autocast as :func:`rankkit.precision.autocast_dtype` says.
    """
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from rankkit.precision import autocast_dtype

    order = np.argsort([-len(ids) for ids in enc["input_ids"]], kind="stable")
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    amp = autocast_dtype(precision, device)
    out: Any = None
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", disable=not show_progress):
            idx = order[start:start + batch_size]
            feats = tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
            feats = {k: v.to(device) for k, v in feats.items()}
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                values = fn(**feats).float().cpu().numpy()
            if out is None:
                out = np.empty((len(order), *values.shape[1:]), dtype=np.float32)
            out[idx] = values
    return out


class EncoderModel(nn.Module):
    """What rankkit's trainable encoder models share: the backbone and tokenizer, the base model's
    identity, LoRA adapters, and the atomic save of a model folder.

    Subclasses set :attr:`config_file`, extend :meth:`config_dict` and, when they own more
    weights than the backbone (a scoring head), :meth:`save_extra`.
    """

    config_file: ClassVar[str] = ""

    def __init__(self, encoder: nn.Module, tokenizer: Any, *, base: str, base_fingerprint: str, max_length: int,
                 meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.base = base
        self.base_fingerprint = base_fingerprint
        self.max_length = max_length
        self.meta: dict[str, Any] = dict(meta or {})

    def modules_to_save(self) -> list[str] | None:
        """Backbone modules trained in full beside a LoRA adapter (e.g. a classifier head)."""
        return None

    def add_lora(self, rank: int = 16, alpha: float = 32, dropout: float = 0.05,
                 target_modules: Sequence[str] = ("query", "key", "value", "dense")) -> None:
        """Wrap the encoder with a fresh peft LoRA adapter (heads outside the backbone stay fully trainable)."""
        self.encoder = add_lora(self.encoder, rank, alpha, dropout, target_modules, self.modules_to_save())

    @property
    def is_peft(self) -> bool:
        """Whether the encoder carries a peft adapter."""
        return hasattr(self.encoder, "peft_config")

    def config_dict(self) -> dict[str, Any]:
        """The content of :attr:`config_file` for this model."""
        meta = dict(self.meta)
        meta.update({"format": 1, "base": self.base, "base_fingerprint": self.base_fingerprint,
                     "max_length": self.max_length})
        return meta

    def save_extra(self, folder: Path) -> None:
        """Write weights that live outside the backbone into ``folder`` (default: none)."""

    def save(self, path: str | os.PathLike[str], *, merged: bool = False) -> Path:
        """Write the model folder atomically (adapter + extras, or full weights when ``merged``)."""
        from rankkit.trec import atomic_dir

        out = Path(path)
        with atomic_dir(out) as tmp:
            meta = self.config_dict()
            if merged or not self.is_peft:
                meta["merged_from_adapter"] = self.is_peft or meta.get("merged_from_adapter", False)
            save_backbone(self.encoder, self.tokenizer, tmp, merged=merged)
            self.save_extra(tmp)
            (tmp / self.config_file).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return out

    def merge(self, path: str | os.PathLike[str]) -> Path:
        """Write a copy with the LoRA update folded into the weights: a plain HF model (+ extras)."""
        return self.save(path, merged=True)
