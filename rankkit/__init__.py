"""rankkit: ranking and retrieval research toolkit.

Public API (imported lazily, so ``import rankkit`` neither starts a JVM nor imports
torch, Pyserini or ranx): :func:`load_dataset`, :class:`Pipeline`, :func:`evaluate`,
:func:`compare`, :func:`fuse`, the retrievers :class:`BM25` and :class:`Dense`, the
rerankers (:class:`Reranker` and its :class:`CrossEncoder`, :class:`Setwise`, :class:`TSPRank`), the trainable
models :class:`CrossEncoderModel` and :class:`BiEncoderModel`, and the core types :class:`Query`, :class:`Document`, :class:`Run`, :class:`Qrels`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Query": "rankkit.types",
    "Document": "rankkit.types",
    "Run": "rankkit.types",
    "Qrels": "rankkit.types",
    "TrainingGroup": "rankkit.types",
    "Dataset": "rankkit.data.dataset",
    "load_dataset": "rankkit.data",
    "available_datasets": "rankkit.data",
    "Pipeline": "rankkit.pipeline",
    "Stage": "rankkit.pipeline",
    "Cutoff": "rankkit.pipeline",
    "fuse": "rankkit.pipeline",
    "BM25": "rankkit.retrieve.bm25",
    "LuceneIndex": "rankkit.index.lucene",
    "Dense": "rankkit.retrieve.dense",
    "Encoder": "rankkit.retrieve.dense",
    "DenseIndex": "rankkit.index.faiss",
    "BiEncoderModel": "rankkit.retrieve.bi_encoder",
    "Reranker": "rankkit.rerank.base",
    "CrossEncoder": "rankkit.rerank.cross_encoder",
    "CrossEncoderModel": "rankkit.rerank.ce_model",
    "Setwise": "rankkit.rerank.setwise",
    "TSPRank": "rankkit.rerank.tsprank",
    "RankkitError": "rankkit.errors",
}

# ``evaluate`` is both a function and the submodule defining it. Import it eagerly (the
# module is light: ranx loads on first call) so the package attribute is always the
# function, whatever imports ``rankkit.evaluate`` as a module later.
from rankkit.evaluate import compare, evaluate  # noqa: E402

__all__ = sorted([*_EXPORTS, "compare", "evaluate"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rankkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
