"""LoRA-Squeeze: train a LoRA adapter at a high rank, then compress it to a lower rank.

Implements the post-hoc compression of *LoRA-Squeeze* (Vulić et al., arXiv 2602.10993).
A LoRA layer with factors ``A`` (r x in) and ``B`` (out x r) and scale ``s`` adds
``dW = s * B @ A`` to a frozen weight. The best rank-k approximation of ``dW`` (in the
Frobenius and spectral norms, by Eckart-Young) is its truncated SVD, which is found
here without ever forming the out x in matrix: with thin QR factorisations
``B = Q_B R_B`` and ``A^T = Q_A R_A``, ``dW = s * Q_B (R_B R_A^T) Q_A^T``, so the SVD
of the small r x r core ``R_B R_A^T = U' S V'^T`` gives ``dW = (Q_B U') (s S) (Q_A V')^T``.
The top k singular triplets become new factors ``B' = U_k sqrt(sS_k) / sqrt(s')`` and
``A' = sqrt(sS_k) V_k^T / sqrt(s')``, so that ``s' * B' @ A'`` is the rank-k truncation.

peft derives the scale from the config (``lora_alpha / r``, or ``lora_alpha / sqrt(r)``
with ``use_rslora``), so changing the rank would silently change the scale. The alpha is
therefore rewritten to keep it: ``alpha' = s * k`` (``s * sqrt(k)`` for rsLoRA), giving
``s' = s``. Per-layer ranks and alphas (peft's ``rank_pattern`` / ``alpha_pattern``) are
honoured when reading and written back as exact, anchored module paths when layers end
up with different ranks. All maths runs in float64; factors keep their original dtype.

Only unmerged adapters can be squeezed: once an adapter is merged into the base
weights the low-rank factors are gone (the saved folder has no ``lora_A``/``lora_B``
keys) and :func:`squeeze_adapter` raises :class:`ValueError`. DoRA adapters are refused
because their magnitude vector is tied to the original update.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

log = logging.getLogger(__name__)

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."
# peft key naming; the optional middle group is an adapter name (absent in saved files).
_KEY_RES = (
    re.compile(r"^(?P<mod>.+)\.lora_(?P<ab>[AB])(?:\.(?P<name>[^.]+))?\.weight$"),
    re.compile(r"^(?P<mod>.+)\.lora_embedding_(?P<ab>[AB])(?:\.(?P<name>[^.]+))?$"),
)
_SHARE_TOL = 1e-12  # energy shares this close to the target count as reaching it


@dataclass
class SqueezeResult:
    """Compressed LoRA factors and the spectrum they were cut from.

    ``A`` (k x in) and ``B`` (out x k) are the new factors in the input dtype, to be used
    with ``scale`` (equal to the input scale), so ``scale * B @ A`` is the best rank-k
    approximation of the original update. ``singular_values`` holds all r singular values
    of the original update (descending, float64) and ``discarded_sq`` the sum of the
    squares of those that were dropped, i.e. the squared Frobenius error.
    """

    A: torch.Tensor
    B: torch.Tensor
    scale: float
    rank: int
    singular_values: torch.Tensor
    discarded_sq: float


def _check_target(rank: int | None, energy: float | None) -> None:
    if (rank is None) == (energy is None):
        raise ValueError("pass exactly one of rank= (target rank) or energy= (share of energy to keep)")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    if energy is not None and (
        isinstance(energy, bool)
        or not isinstance(energy, (int, float))
        or not 0.0 < float(energy) <= 1.0
    ):
        raise ValueError(f"energy must be a number in (0, 1], got {energy!r}")


def _choose_rank(sig: torch.Tensor, r: int, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        return max(1, min(rank, r))
    sq = sig.square()
    total = float(sq.sum())
    if total == 0.0:
        return 1
    share = torch.cumsum(sq, 0) / total
    reached = torch.nonzero(share >= float(energy) - _SHARE_TOL)  # type: ignore[arg-type]
    return int(reached[0, 0]) + 1 if reached.numel() else r


def squeeze_pair(
    A: torch.Tensor,
    B: torch.Tensor,
    scale: float,
    rank: int | None = None,
    energy: float | None = None,
) -> SqueezeResult:
    """Compress one LoRA factor pair to its best rank-k approximation.

    ``A`` is r x in and ``B`` is out x r (convolution factors with extra trailing
    dimensions are flattened and restored). Give exactly one of ``rank`` (a fixed target,
    clipped to r) or ``energy`` in (0, 1] (the smallest k whose kept share of squared
    singular values reaches it). The SVD is taken via QR of both factors and an r x r
    core, in float64; the returned factors use the same scale and the input dtype, padded
    with zeros if k exceeds the numerical rank bound min(out, in). Raises
    :class:`ValueError` for bad arguments or mismatched shapes.
    """
    _check_target(rank, energy)
    if A.ndim < 2 or B.ndim < 2 or B.shape[1] != A.shape[0]:
        raise ValueError(f"LoRA factors do not pair: A {tuple(A.shape)}, B {tuple(B.shape)}")
    r, out_dim = A.shape[0], B.shape[0]
    if B.numel() != out_dim * r:
        raise ValueError(f"lora_B must be out x r (trailing dims of size 1), got {tuple(B.shape)}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite positive number, got {scale!r}")
    a = A.detach().reshape(r, -1).to(torch.float64)
    b = B.detach().reshape(out_dim, r).to(torch.float64)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("LoRA factors contain non-finite values")

    q_b, r_b = torch.linalg.qr(b)  # out x m1, m1 x r
    q_a, r_a = torch.linalg.qr(a.T)  # in x m2, m2 x r
    u, core_sv, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)
    sig = scale * core_sv  # singular values of dW, descending
    sig_all = torch.zeros(r, dtype=torch.float64)
    sig_all[: sig.numel()] = sig

    k = _choose_rank(sig_all, r, rank, energy)
    kk = min(k, sig.numel())
    new_scale = float(scale)
    root = torch.sqrt(sig[:kk] / new_scale)
    b_new = torch.zeros(out_dim, k, dtype=torch.float64)
    a_new = torch.zeros(k, a.shape[1], dtype=torch.float64)
    b_new[:, :kk] = (q_b @ u[:, :kk]) * root
    a_new[:kk] = root[:, None] * (vh[:kk] @ q_a.T)
    discarded = float(sig_all[k:].square().sum())
    return SqueezeResult(
        A=a_new.reshape(k, *A.shape[1:]).to(A.dtype),
        B=b_new.reshape(out_dim, k, *B.shape[2:]).to(B.dtype),
        scale=new_scale,
        rank=k,
        singular_values=sig_all,
        discarded_sq=discarded,
    )


def _pattern_value(patterns: dict[str, Any] | None, module: str, default: Any) -> Any:
    # Same rule as peft's get_pattern_key: the first key that matches a dotted suffix.
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _tidy(alpha: float) -> float | int:
    nearest = round(alpha)
    return int(nearest) if abs(alpha - nearest) <= 1e-9 * max(1.0, abs(alpha)) else alpha


def _locate(src: Path) -> tuple[Path, Path | None]:
    """Return (adapter folder, rankkit model folder or None)."""
    if (src / CONFIG_NAME).is_file():
        return src, None
    if (src / "adapter" / CONFIG_NAME).is_file():
        return src / "adapter", src
    raise ValueError(f"{src} is neither a peft adapter folder nor a rankkit folder with adapter/{CONFIG_NAME}")


def _copy_except(src: Path, dst: Path, skip: set[str]) -> None:
    for entry in src.iterdir():
        if entry.name in skip:
            continue
        if entry.is_dir():
            shutil.copytree(entry, dst / entry.name)
        else:
            shutil.copy2(entry, dst / entry.name)


def squeeze_adapter(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    rank: int | None = None,
    energy: float | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Compress a saved, unmerged peft LoRA adapter into a new folder.

    ``src`` is a peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)
    or a rankkit model folder holding one under ``adapter/``; every other file is copied
    verbatim and non-LoRA tensors (e.g. ``modules_to_save``) are kept unchanged. With
    ``rank`` every layer gets that rank (clipped to its own); with ``energy`` each layer
    keeps the smallest rank reaching that energy share and the config gets
    ``rank_pattern``/``alpha_pattern`` entries keyed by anchored full module paths. Alphas
    are rewritten so each layer keeps its scale. ``out`` is built in a temporary folder
    beside it and renamed into place; an existing ``out`` is refused unless
    ``overwrite``. Returns a report with per-module ranks, kept energy and Frobenius error,
    and the LoRA parameter counts before and after.
    """
    _check_target(rank, energy)
    src, out = Path(src), Path(out)
    adapter_dir, model_dir = _locate(src)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True to replace it)")
    if src.resolve() in out.resolve().parents:
        raise ValueError(f"output {out} must not lie inside the source folder {src}")
    weights_path = adapter_dir / WEIGHTS_NAME
    if not weights_path.is_file():
        raise ValueError(f"{adapter_dir} has no {WEIGHTS_NAME} (only safetensors adapters are supported)")
    config = json.loads((adapter_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"{adapter_dir / CONFIG_NAME}: peft_type {config.get('peft_type')!r} is not LORA")
    if config.get("use_dora"):
        raise ValueError(f"{adapter_dir / CONFIG_NAME}: DoRA adapters cannot be squeezed")

    with safe_open(str(weights_path), framework="pt") as fh:
        metadata = fh.metadata()
        tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118
    pairs: dict[str, dict[str, str]] = {}
    for key in tensors:
        for pattern in _KEY_RES:
            if m := pattern.match(key):
                pairs.setdefault(m["mod"], {})[m["ab"]] = key
                break
    if not pairs:
        raise ValueError(f"{weights_path} has no LoRA keys (lora_A/lora_B); merged adapters cannot be squeezed")
    for mod, both in pairs.items():
        if set(both) != {"A", "B"}:
            raise ValueError(f"{weights_path}: module {mod} lacks lora_{'B' if 'A' in both else 'A'}")

    rslora = bool(config.get("use_rslora", False))
    base_r, base_alpha = config.get("r", 8), config.get("lora_alpha", 8)
    new_tensors = dict(tensors)
    modules: dict[str, dict[str, Any]] = {}
    chosen: dict[str, tuple[int, float | int]] = {}
    before = after = 0
    for mod, both in pairs.items():
        name = mod[len(_PEFT_PREFIX) :] if mod.startswith(_PEFT_PREFIX) else mod
        a, b = tensors[both["A"]], tensors[both["B"]]
        r_cfg = _pattern_value(config.get("rank_pattern"), name, base_r)
        alpha = _pattern_value(config.get("alpha_pattern"), name, base_alpha)
        if r_cfg != a.shape[0]:
            raise ValueError(f"{name}: config says r={r_cfg} but lora_A has {a.shape[0]} rows")
        scale = alpha / (math.sqrt(r_cfg) if rslora else r_cfg)
        res = squeeze_pair(a, b, scale, rank=rank, energy=energy)
        new_tensors[both["A"]], new_tensors[both["B"]] = res.A.contiguous(), res.B.contiguous()
        chosen[name] = (res.rank, _tidy(res.scale * (math.sqrt(res.rank) if rslora else res.rank)))
        total = float(res.singular_values.square().sum())
        modules[name] = {
            "rank_before": int(a.shape[0]),
            "rank_after": res.rank,
            "energy_kept": 1.0 if total == 0 else (total - res.discarded_sq) / total,
            "frobenius_error": math.sqrt(max(res.discarded_sq, 0.0)),
        }
        before += a.numel() + b.numel()
        after += res.A.numel() + res.B.numel()
        log.debug("squeezed %s: rank %d -> %d", name, a.shape[0], res.rank)

    default_k, default_alpha = Counter(chosen.values()).most_common(1)[0][0]
    explicit = energy is not None
    config["r"], config["lora_alpha"] = default_k, default_alpha
    config["rank_pattern"] = {
        "^" + re.escape(n): k for n, (k, _) in chosen.items() if explicit or k != default_k
    }
    config["alpha_pattern"] = {
        "^" + re.escape(n): al for n, (_, al) in chosen.items() if explicit or al != default_alpha
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, stat.S_IMODE(src.stat().st_mode))
        new_adapter = tmp
        if model_dir is not None:
            _copy_except(model_dir, tmp, {adapter_dir.name})
            new_adapter = tmp / adapter_dir.name
            new_adapter.mkdir()
        _copy_except(adapter_dir, new_adapter, {CONFIG_NAME, WEIGHTS_NAME})
        save_file(new_tensors, str(new_adapter / WEIGHTS_NAME), metadata=metadata)
        (new_adapter / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.{uuid.uuid4().hex}.old")
            os.rename(out, old)
            os.rename(tmp, out)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "squeezed %d LoRA modules from %s into %s: %d -> %d parameters",
        len(modules), src, out, before, after,
    )
    return {"modules": modules, "params_before": before, "params_after": after}
