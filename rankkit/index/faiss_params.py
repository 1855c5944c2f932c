"""Parameters of rankkit's FAISS indexes: the kinds, their defaults, validation and the GPU decision.

Kept apart from :mod:`rankkit.index.faiss` so that configs can check index settings
cheaply, before any corpus is encoded (:func:`check_params`).
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from rankkit.errors import ConfigError

KINDS = ("flat", "hnsw", "ivf_flat", "ivf_pq")
IVF_KINDS = ("ivf_flat", "ivf_pq")
APPROXIMATE_KINDS = ("hnsw", "ivf_flat", "ivf_pq")
GPU_KINDS = ("flat", "ivf_flat", "ivf_pq")  # FAISS has no GPU HNSW
DEFAULT_NPROBE = 32  # lists scanned per query when nprobe is not given (capped at nlist)
RECALL_K = 100
RECALL_SAMPLE = 256
MIN_POINTS_PER_CENTROID = 39  # FAISS's k-means warns below this many training points per centroid
TRAIN_POINTS_PER_CENTROID = 40  # default training sample per centroid
GPU_MAX_K = 2048  # FAISS GPU k-selection limit (k and nprobe)


def gpu_plan(gpu: bool | str, kind: str) -> tuple[bool, str]:
    """Whether to search on GPU, and why not; ``gpu=True`` without a usable GPU is an error.

    Only ``faiss.get_num_gpus`` is called here: nothing touches a GPU.
    """
    if not (gpu == "auto" if isinstance(gpu, str) else isinstance(gpu, (bool, np.bool_))):
        raise ConfigError(f"gpu must be True, False or 'auto', got {repr(gpu)[:80]}")
    if gpu is False or gpu is np.False_:
        return False, "gpu=False"
    num = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if num == 0:
        if gpu is not True and gpu is not np.True_:
            return False, "FAISS sees no GPU"
        raise ConfigError("gpu=True but FAISS sees no GPU (install faiss-gpu and a CUDA build)")
    if kind not in GPU_KINDS:
        if gpu is True or gpu is np.True_:
            raise ConfigError(f"FAISS has no GPU version of a {kind!r} index; use gpu='auto' (it is then searched "
                              f"on the CPU) or index 'flat', 'ivf_flat' or 'ivf_pq'")
        return False, f"FAISS has no GPU {kind} index"
    return True, ""


def check_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int if it is an integer (not a bool) in range, else :class:`ConfigError`."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum
            or (maximum is not None and value > maximum)):
        small = isinstance(value, (float, np.number)) or (isinstance(value, int) and value.bit_length() <= 64)
        shown = repr(value)[:80] if small else f"a value of type {type(value).__name__}"
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigError(f"{name} must be an integer {bound}, got {shown}")
    return int(value)


def check_optional_int(value: Any, name: str, minimum: int) -> int | None:
    """``None``, or ``value`` checked by :func:`check_int`."""
    return None if value is None else check_int(value, name, minimum)


def check_kind(kind: Any) -> str:
    """``kind`` if it is one of :data:`KINDS`, else :class:`ConfigError` listing them."""
    if not isinstance(kind, str) or kind not in KINDS:
        shown = repr(kind[:80]) if isinstance(kind, str) else f"of type {type(kind).__name__}"
        raise ConfigError(f"unknown dense index kind {shown}; choose one of {', '.join(KINDS)}")
    return kind


def auto_nlist(count: int) -> int:
    """The default number of IVF lists for ``count`` vectors: about ``4 * sqrt(count)``.

    Capped at ``count // 39`` so that k-means has the 39 training points per centroid
    FAISS asks for, and at least 1.
    """
    return max(1, min(round(4 * math.sqrt(count)), count // MIN_POINTS_PER_CENTROID))


def auto_pq_m(dim: int) -> int:
    """The default number of PQ sub-quantizers for ``dim``: the divisor of ``dim`` nearest ``dim / 8``."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(m - dim / 8), -m))


def _divisors_near(dim: int, target: float, count: int = 4) -> list[int]:
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return sorted(sorted(divisors, key=lambda m: abs(m - target))[:count])


def check_params(
    kind: str,
    dim: int | None = None,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    pq_m: int | None = None,
    pq_nbits: int = 8,
    train_size: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 40,
    ef_search: int = 128,
    seed: int = 0,
) -> dict[str, Any]:
    """Validate index parameters (cheap; call it before encoding a corpus) and return them normalised.

    Every parameter is checked whatever the kind (so a typo never waits for another
    kind); only ``kind``'s own ones constrain each other: ``nprobe <= nlist``, ``pq_m``
    dividing ``dim`` (when ``dim`` is known), ``train_size`` at least ``nlist`` and, for
    ``ivf_pq``, at least ``2 ** pq_nbits``. ``None`` for ``nlist``, ``nprobe``, ``pq_m`` or
    ``train_size`` means "choose automatically" (see :meth:`DenseIndex.build`).
    Raises :class:`~rankkit.errors.ConfigError` naming the parameter and value.
    """
    kind = check_kind(kind)
    dim = check_optional_int(dim, "dim", 1)
    p: dict[str, Any] = {
        "kind": kind,
        "nlist": check_optional_int(nlist, "nlist", 1),
        "nprobe": check_optional_int(nprobe, "nprobe", 1),
        "pq_m": check_optional_int(pq_m, "pq_m", 1),
        "pq_nbits": check_int(pq_nbits, "pq_nbits", 1, 16),
        "train_size": check_optional_int(train_size, "train_size", 1),
        "hnsw_m": check_int(hnsw_m, "hnsw_m", 2),
        "ef_construction": check_int(ef_construction, "ef_construction", 1),
        "ef_search": check_int(ef_search, "ef_search", 1),
        "seed": check_int(seed, "seed", 0, 2**32 - 1),
    }
    if kind in IVF_KINDS:
        if p["nlist"] is not None and p["nprobe"] is not None and p["nprobe"] > p["nlist"]:
            raise ConfigError(f"nprobe={p['nprobe']} is larger than nlist={p['nlist']}: an IVF search cannot scan "
                              "more lists than the index has; lower nprobe or raise nlist")
        if p["nlist"] is not None and p["train_size"] is not None and p["train_size"] < p["nlist"]:
            raise ConfigError(f"train_size={p['train_size']} is smaller than nlist={p['nlist']}: k-means needs at "
                              "least one training vector per list")
    if kind == "ivf_pq":
        if dim is not None and p["pq_m"] is not None and dim % p["pq_m"]:
            raise ConfigError(f"pq_m={p['pq_m']} does not divide the vector dimension {dim} (each sub-quantizer "
                              f"codes dim / pq_m dimensions); divisors of {dim} near it: "
                              f"{', '.join(map(str, _divisors_near(dim, p['pq_m'])))}")
        if p["train_size"] is not None and p["train_size"] < 2 ** p["pq_nbits"]:
            raise ConfigError(f"train_size={p['train_size']} is smaller than 2**pq_nbits={2 ** p['pq_nbits']}: each "
                              "product-quantizer codebook needs one training vector per centroid")
    return p
