"""A fixed cross-encoder and SciFact pairs for the scoring-identity test (tests/rerank/test_ce_golden.py).

The model is all-MiniLM-L6-v2 with a seeded mean-pooling head and a LoRA adapter whose B
matrices are seeded too (a fresh adapter is the identity), so it is fully determined by the
offline wheel and the seeds. The golden scores in ``tests/data/golden/ce_scores.json`` were
written by the code before the issue-9 refactor from exactly this model and these pairs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def build_candidates(scifact: str | Path) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """4 SciFact test queries x 12 documents (their relevant ones first, then corpus order).

    Returns (query texts, candidate docids per query, document ``title + " " + text``).
    """
    root = Path(scifact)
    queries = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines()]
    test: dict[str, list[str]] = {}
    for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, _ = line.split("\t")
        test.setdefault(q, []).append(d)
    chosen = [q for q in queries if q["_id"] in test][:4]
    corpus: dict[str, str] = {}
    with open(root / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            corpus[rec["_id"]] = f"{rec['title']} {rec['text']}".strip() if rec.get("title") else rec["text"]
    first = list(corpus)[:12]
    texts = {q["_id"]: q["text"] for q in chosen}
    candidates = {q["_id"]: list(dict.fromkeys([*test[q["_id"]], *first]))[:12] for q in chosen}
    return texts, candidates, corpus


def build_pairs(scifact: str | Path) -> tuple[list[str], list[str]]:
    """The (query, document) texts of :func:`build_candidates`, query by query."""
    texts, candidates, corpus = build_candidates(scifact)
    qs = [texts[q] for q, ds in candidates.items() for _ in ds]
    ds = [corpus[d] for docs in candidates.values() for d in docs]
    return qs, ds


def build_model() -> Any:
    """MiniLM + seeded mean head + LoRA r=4 with seeded B matrices (deterministic, non-trivial)."""
    import torch

    from rankkit.rerank.ce_model import CrossEncoderModel

    model = CrossEncoderModel.new("minilm", head="mean", max_length=128, seed=7)
    model.add_lora(4, 8, 0.0, ["query", "value"])
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model
