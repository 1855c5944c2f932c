"""Side-by-side benchmark: rankkit dense retrieval vs sentence-transformers + FAISS used directly.

In one process and on the same documents, encode the corpus with rankkit's
:class:`~rankkit.retrieve.dense.Encoder` and with ``SentenceTransformer.encode``
(same model, max length, batch size, device), time both (after one warm-up each, in
alternating order over ``repeats``), build a flat inner-product index from each, take
the top 1000 per query and compare nDCG@10 with ranx. The peer is the anchor of
``ANCHORS.md`` ("dense encoding + FAISS search"); the acceptance bar is a docs/s
ratio >= 0.95 and equal nDCG@10.

Usage (once ``rankkit.load_dataset`` reads a local BEIR folder)::

    python eval/bench_dense.py ../shared/data/beir/scifact --limit-docs 500
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import numpy as np

from rankkit.data.dataset import Dataset
from rankkit.models import MINILM_ID, resolve_device, resolve_model

log = logging.getLogger(__name__)


def _ndcg10(run: dict[str, dict[str, float]], qrels: Any) -> float:
    import ranx

    judged = {q: d for q, d in qrels.to_dict().items() if q in run}
    return float(ranx.evaluate(ranx.Qrels.from_dict(judged), ranx.Run.from_dict(run), "ndcg@10"))


def bench_dense(
    dataset: Dataset,
    model: str = MINILM_ID,
    max_length: int = 256,
    batch_size: int = 64,
    repeats: int = 1,
    limit_docs: int | None = None,
    device: str = "auto",
    hits: int = 1000,
) -> dict[str, Any]:
    """Benchmark rankkit's encoder + DenseIndex against sentence-transformers + ``faiss.IndexFlatIP``.

    Encodes the first ``limit_docs`` documents (all when ``None``) ``repeats`` times with
    each implementation, alternating which goes first, after one warm-up batch each;
    docs/s is taken from each side's fastest repeat. Returns a dict with both docs/s
    figures, their ratio (rankkit / sentence-transformers), both nDCG@10 values over
    the dataset's judged queries, their absolute difference, and the settings used.
    """
    import faiss
    import torch
    from sentence_transformers import SentenceTransformer

    from rankkit.index.faiss import DenseIndex
    from rankkit.retrieve.dense import Encoder

    docs = list(dataset.docs_iter())[:limit_docs] if limit_docs else list(dataset.docs_iter())
    docids = [d.docid for d in docs]
    texts = [d.contents for d in docs]
    queries = [q for q in dataset.queries if q.qid in dataset.qrels]
    qids, qtexts = [q.qid for q in queries], [q.text for q in queries]
    dev = resolve_device(device)

    enc = Encoder(model, max_length=max_length, batch_size=batch_size, device=dev, show_progress=False)
    st = SentenceTransformer(resolve_model(model), device=dev, model_kwargs={"use_safetensors": True})
    st.max_seq_length = max_length
    if enc.fp16:
        st.half()

    def sync() -> None:
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    def run_rankkit() -> np.ndarray:
        return enc.encode_docs(docs)

    def run_st() -> np.ndarray:
        return np.asarray(st.encode(texts, batch_size=batch_size, show_progress_bar=False), dtype=np.float32)

    enc.encode_docs(docs[:batch_size])  # warm-up: first-call costs (allocations, kernels) paid by neither timing
    st.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)
    times: dict[str, list[float]] = {"rankkit": [], "st": []}
    emb: dict[str, np.ndarray] = {}
    sides = {"rankkit": run_rankkit, "st": run_st}
    for r in range(max(1, repeats)):
        order = ["rankkit", "st"] if r % 2 == 0 else ["st", "rankkit"]
        for side in order:
            sync()
            start = time.perf_counter()
            emb[side] = sides[side]()
            sync()
            times[side].append(time.perf_counter() - start)
            log.info("%s: %d docs in %.2f s", side, len(docs), times[side][-1])

    k = min(hits, len(docs))
    ours = DenseIndex.build(emb["rankkit"], docids, kind="flat")
    ours_scores, ours_docids = ours.search(enc.encode_queries(qtexts), k)
    peer = faiss.IndexFlatIP(emb["st"].shape[1])
    peer.add(emb["st"])
    peer_scores, peer_rows = peer.search(
        np.asarray(st.encode(qtexts, batch_size=batch_size, show_progress_bar=False), dtype=np.float32), k)

    ndcg_ours = _ndcg10({q: {d: float(s) for d, s in zip(ids, sc)}
                         for q, ids, sc in zip(qids, ours_docids, ours_scores)}, dataset.qrels)
    ndcg_peer = _ndcg10({q: {docids[j]: float(s) for j, s in zip(r, sc) if j >= 0}
                         for q, r, sc in zip(qids, peer_rows, peer_scores)}, dataset.qrels)
    dps_ours = len(docs) / min(times["rankkit"])
    dps_peer = len(docs) / min(times["st"])
    return {
        "docs": len(docs), "queries": len(queries), "model": model, "max_length": max_length,
        "batch_size": batch_size, "repeats": max(1, repeats), "device": dev, "precision": enc.precision,
        "rankkit_docs_per_s": dps_ours, "st_docs_per_s": dps_peer, "docs_per_s_ratio": dps_ours / dps_peer,
        "rankkit_seconds": times["rankkit"], "st_seconds": times["st"],
        "rankkit_ndcg@10": ndcg_ours, "st_ndcg@10": ndcg_peer, "ndcg@10_abs_diff": abs(ndcg_ours - ndcg_peer),
        "max_abs_embedding_diff": float(np.max(np.abs(emb["rankkit"] - emb["st"]))),
    }


def main() -> None:
    """Command line: benchmark on a dataset id or local BEIR folder and print the figures as JSON."""
    import rankkit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="dataset id or local BEIR folder (rankkit.load_dataset)")
    parser.add_argument("--model", default=MINILM_ID)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = bench_dense(rankkit.load_dataset(args.dataset), model=args.model, max_length=args.max_length,
                         batch_size=args.batch_size, repeats=args.repeats, limit_docs=args.limit_docs,
                         device=args.device)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
