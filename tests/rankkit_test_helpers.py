"""Helpers shared by test modules (importable: pytest puts tests/ on sys.path for its conftest)."""

from __future__ import annotations

from pathlib import Path


def slice_beir(src: Path, out: Path, split: str, num_queries: int, extra_docs: int) -> Path:
    """Copy a small BEIR folder: the first ``num_queries`` judged queries of ``split``, their judged
    documents and the first ``extra_docs`` documents of the corpus as distractors."""
    import json

    (out / "qrels").mkdir(parents=True)
    lines = (src / "qrels" / f"{split}.tsv").read_text().splitlines()
    qids: list[str] = []
    kept = [lines[0]]
    for line in lines[1:]:
        qid = line.split("\t")[0]
        if qid not in qids:
            if len(qids) == num_queries:
                continue
            qids.append(qid)
        kept.append(line)
    (out / "qrels" / f"{split}.tsv").write_text("\n".join(kept) + "\n")
    judged = {line.split("\t")[1] for line in kept[1:]}
    with open(src / "corpus.jsonl") as fh:
        docs = [line for i, line in enumerate(fh) if i < extra_docs or json.loads(line)["_id"] in judged]
    (out / "corpus.jsonl").write_text("".join(docs))
    with open(src / "queries.jsonl") as fh:
        (out / "queries.jsonl").write_text("".join(l for l in fh if json.loads(l)["_id"] in qids))
    return out
