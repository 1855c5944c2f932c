"""One spelling of numeric precision for every model rankkit loads, scores with or trains.

Every config says ``precision: auto | fp32 | bf16 | fp16``:

- for loading weights (:func:`load_dtype`): ``auto`` is bf16 on CUDA (fp16 on a GPU without
  bf16, before Ampere) and fp32 elsewhere;
- for inference autocast (:func:`autocast_dtype`): ``auto`` is the same half type on CUDA and none (fp32)
  on the CPU, where the fastest choice depends on the processor (AMX or not) and is left
  to measurement; an explicit ``bf16`` or ``fp16`` is honoured on any device;
- for training (:func:`mixed_precision`): the ``mixed_precision`` string of ``accelerate``
  and the ``bf16``/``fp16`` flags of ``transformers``/``trl`` (``auto``: bf16 on CUDA, or fp16
  without bf16 support; none on the CPU).
"""

from __future__ import annotations

from typing import Any

from rankkit.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_precision(value: str, where: str = "precision") -> str:
    """``value`` if it is a known precision, else :class:`ConfigError` naming ``where``."""
    if value not in PRECISIONS:
        raise ConfigError(f"{where} must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def _is_cuda(device: Any) -> bool:
    return str(getattr(device, "type", device)).startswith("cuda")


def cuda_half() -> str:
    """The half precision ``auto`` means on CUDA: ``bf16`` where the GPU supports it, else ``fp16``."""
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"


def load_dtype(precision: str, device: Any) -> Any:
    """The torch dtype to load weights in (``auto``: bf16 on CUDA, fp32 elsewhere)."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision_name(precision, device)]


def precision_name(precision: str, device: Any) -> str:
    """The precision weights are loaded in, by name: ``fp32``, ``bf16`` or ``fp16`` (``auto`` resolved)."""
    check_precision(precision)
    if precision == "auto":
        return cuda_half() if _is_cuda(device) else "fp32"
    return precision


def autocast_dtype(precision: str, device: Any) -> Any | None:
    """The autocast dtype for inference (``None``: plain fp32); see the module docstring."""
    import torch

    name = precision_name(precision, device)
    if name == "fp32" or (precision == "auto" and not _is_cuda(device)):
        return None
    return torch.float16 if name == "fp16" else torch.bfloat16


def mixed_precision(precision: str, device: Any) -> str:
    """``accelerate``'s ``mixed_precision`` value: ``no``, ``bf16`` or ``fp16``."""
    name = precision_name(precision, device)
    return "no" if name == "fp32" else name
