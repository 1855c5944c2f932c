"""Shared test fixtures: isolated caches, offline mode, and the shared data folder.

Every test session gets its own ``IR_DATASETS_HOME`` and ``RANKKIT_CACHE_DIR`` under a
temp dir, so tests never touch a user's caches and always exercise offline priming.
Tests on real data need ``RANKKIT_DATA_DIR`` (``make test`` and ``.ci/run`` set it to
``../shared/data``); without it they are skipped locally, but fail under CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("caches")
    os.environ["IR_DATASETS_HOME"] = str(root / "ir_datasets")
    os.environ["RANKKIT_CACHE_DIR"] = str(root / "rankkit")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder; skips locally when absent, fails in CI."""
    value = os.environ.get("RANKKIT_DATA_DIR")
    if value and Path(value).is_dir():
        return Path(value)
    if os.environ.get("CI"):
        pytest.fail("RANKKIT_DATA_DIR is not set to the shared data folder in CI")
    pytest.skip("RANKKIT_DATA_DIR not set (make test sets it to ../shared/data)")


@pytest.fixture(scope="session")
def scifact_dir(data_dir: Path) -> Path:
    """The local BEIR SciFact folder."""
    path = data_dir / "beir" / "scifact"
    assert path.is_dir(), f"{path} missing"
    return path
