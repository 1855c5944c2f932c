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

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rankkit.errors import ConfigError
from rankkit.hf_encoder import (ADAPTER_DIR, EncoderModel, check_kind, load_backbone, new_backbone, pool, read_meta,
                                sorted_inference)
from rankkit.models import model_fingerprint, resolve_device, resolve_model

log = logging.getLogger(__name__)

CONFIG_FILE = "rankkit_ce.json"
HEAD_FILE = "head.safetensors"
HEADS = ("mean", "cls", "hf")


def _is_seqcls(path_or_id: str) -> bool:
    """Whether a model's config names a sequence-classification architecture."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path_or_id)
    return any(a.endswith("ForSequenceClassification") for a in (cfg.architectures or []))


class CrossEncoderModel(EncoderModel):
    """A cross-encoder: ``forward(**batch)`` returns one relevance score per pair.

    Build a fresh one with :meth:`new`, read a saved or published one with
    :meth:`load`, add LoRA adapters with :meth:`add_lora`, write it with :meth:`save`
    and :meth:`merge`, and score text pairs with :meth:`score`.
    """

    def __init__(self, encoder: nn.Module, tokenizer: Any, *, head: str, base: str,
                 base_fingerprint: str, max_length: int = 256, linear: nn.Linear | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        super().__init__(encoder, tokenizer, base=base, base_fingerprint=base_fingerprint, max_length=max_length,
                         meta=meta)
        self.head = head
        self.linear = linear

    # --- construction -------------------------------------------------------------------

    @classmethod
    def new(cls, base: str, head: str = "mean", max_length: int = 256, seed: int = 0) -> CrossEncoderModel:
        """A model with an untrained head on top of ``base`` (any HF id or local path).

        ``head`` is ``"mean"``/``"cls"`` (new linear layer on pooled states) or ``"hf"``
        (``AutoModelForSequenceClassification`` with one label; its classifier is new
        unless ``base`` already is a sequence-classification model). ``seed`` fixes the
        head's initialisation.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        torch.manual_seed(seed)
        linear = None
        if head == "hf":
            path = resolve_model(base)
            tokenizer = AutoTokenizer.from_pretrained(path)
            encoder = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, use_safetensors=True)
        else:
            encoder, tokenizer, path = new_backbone(base, pooled=True)
            linear = nn.Linear(encoder.config.hidden_size, 1)
            nn.init.normal_(linear.weight, std=getattr(encoder.config, "initializer_range", 0.02))
            nn.init.zeros_(linear.bias)
        return cls(encoder, tokenizer, head=head, base=base, base_fingerprint=model_fingerprint(path),
                   max_length=max_length, linear=linear)

    @classmethod
    def load(cls, path_or_id: str, *, base: str | None = None, trainable: bool = False,
             max_length: int | None = None, merge: bool = False) -> CrossEncoderModel:
        """Load a rankkit folder, a merged folder or a published sequence-classification model.

        For a folder with a LoRA adapter the base model named in ``rankkit_ce.json``
        is loaded (or ``base``, which must have the same content fingerprint, else
        :class:`ConfigError`). ``trainable=True`` keeps the adapter trainable (to
        continue training); ``merge=True`` (inference) merges it into the weights: faster
        scoring (1.2x for the demo model on a 2-core CPU), equal up to float rounding. A plain
        HF encoder without a scoring head is refused.
        """
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(path_or_id)
        folder = Path(path)
        check_kind(folder, CONFIG_FILE)
        if not (folder / CONFIG_FILE).is_file():
            if not (folder / "config.json").is_file() and folder.is_dir() or not _is_seqcls(path):
                raise ConfigError(
                    f"{path_or_id}: not a cross-encoder (no {CONFIG_FILE} and no sequence-classification head); "
                    "train one with `rankkit train reranker` or give a sequence-classification model")
            tokenizer = AutoTokenizer.from_pretrained(path)
            encoder = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
            return cls(encoder, tokenizer, head="hf", base=str(path_or_id), base_fingerprint=model_fingerprint(path),
                       max_length=max_length or 512)
        meta = read_meta(folder, CONFIG_FILE)
        head = meta.get("head")
        if head not in HEADS:
            raise ConfigError(f"{folder / CONFIG_FILE}: unknown head {head!r}; expected one of {', '.join(HEADS)}")
        tokenizer = AutoTokenizer.from_pretrained(path)
        if head == "hf":
            encoder = load_backbone(folder, meta, AutoModelForSequenceClassification, base=base, trainable=trainable,
                                    merge=merge, **({"num_labels": 1} if (folder / ADAPTER_DIR).is_dir() else {}))
        else:
            encoder = load_backbone(folder, meta, AutoModel, base=base, trainable=trainable, pooled=True, merge=merge)
        linear = None
        if head != "hf":
            from safetensors.torch import load_file

            state = load_file(str(folder / HEAD_FILE))
            linear = nn.Linear(state["weight"].shape[1], 1)
            linear.load_state_dict(state)
        return cls(encoder, tokenizer, head=head, base=meta["base"], base_fingerprint=meta.get("base_fingerprint", ""),
                   max_length=max_length or int(meta.get("max_length", 256)), linear=linear, meta=meta)

    # --- adapters -----------------------------------------------------------------------

    config_file = CONFIG_FILE

    def modules_to_save(self) -> list[str] | None:
        """An ``hf`` head's classifier is trained in full beside the adapter."""
        return ["classifier", "score"] if self.head == "hf" else None

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
        pooled = pool(states, attention_mask, self.head)
        return self.linear(pooled.to(self.linear.weight.dtype))[:, 0]

    def tokenize(self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None) -> dict[str, Any]:
        """Tokenise pairs without padding (``longest_first`` truncation to ``max_length``)."""
        return self.tokenizer(list(queries), list(docs), truncation=True,
                              max_length=max_length or self.max_length, padding=False)

    def score(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 64,
              max_length: int | None = None, device: str = "auto", precision: str = "auto",
              show_progress: bool = False, backend: str = "torch") -> np.ndarray:
        """Score (query, doc) pairs; returns float32 scores in input order.

        Pairs are sorted by token length so each batch pads to its own longest pair.
        ``backend``/``precision`` follow :mod:`rankkit.backends` (``torch``: eager PyTorch,
        ``precision="auto"`` is bf16 autocast on CUDA and on CPUs with native bf16 (AMX,
        AVX512-BF16), fp32 elsewhere; pass ``"fp32"`` for bit-stable scores; ``onnx``: ONNX
        Runtime in fp32 or int8; ``auto``: the measured default of the device).
        """
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        from rankkit.backends import inference_fn

        dev = torch.device(resolve_device(device))
        self.to(dev).eval()
        enc = self.tokenize(queries, docs, max_length)
        fn, precision = inference_fn(self, "forward", enc, backend, precision, dev)
        return sorted_inference(fn, self.tokenizer, enc, batch_size=batch_size, device=dev, precision=precision,
                                desc="cross-encoder", show_progress=show_progress)

    # --- saving -------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """The ``rankkit_ce.json`` content for this model."""
        meta = super().config_dict()
        meta["head"] = self.head
        return meta

    def save_extra(self, folder: Path) -> None:
        """The pooled heads' linear layer as ``head.safetensors``."""
        from safetensors.torch import save_file

        if self.linear is not None:
            save_file({k: v.detach().float().cpu().contiguous() for k, v in self.linear.state_dict().items()},
                      str(folder / HEAD_FILE))
