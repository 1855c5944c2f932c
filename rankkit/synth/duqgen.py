"""DUQGen: a synthetic training set for a target corpus, from the corpus alone.

DUQGen (Chandradevan, Dhole and Agichtein, "DUQGen: Effective Unsupervised Domain
Adaptation of Neural Rankers by Diversifying Synthetic Query Generation", NAACL 2024,
arXiv 2404.02489): embed the corpus, cluster it, sample documents across the clusters
(:mod:`rankkit.synth.sampling`), generate one query per document with a causal LM
(:mod:`rankkit.synth.querygen`) and mine negatives from the bottom of a retriever's
top 100. :func:`run_duqgen` writes a BEIR folder that ``rankkit train reranker`` reads
like any dataset (``data.dataset: <folder>``, ``data.split: train``,
``data.first_stage: <folder>/negatives.trec``)::

    <output>/corpus.jsonl       the source corpus, untouched (a link to it when the source is a BEIR folder)
    <output>/queries.jsonl      the generated queries (``_id`` = ``duqgen-<docid>``)
    <output>/qrels/train.tsv    each query's source document, grade 1
    <output>/negatives.trec     each query's mined negatives (a TREC run)
    <output>/duqgen_card.json   every setting, counts, dropped generations, stage times, tokens/s, run card

Only the corpus of ``corpus`` is read, never its queries or qrels. Query generation
logs finished batches under ``<output>.partial/`` so a killed run continues where it
stopped (the same settings; different settings start that log afresh); the folder
itself appears only when everything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankkit.config import to_mapping
from rankkit.errors import ConfigError, DatasetError
from rankkit.synth.config import DUQGenConfig
from rankkit.synth.sampling import elbow, kmeans, normalize_rows, sample_clusters, uniform_sample
from rankkit.types import Document, Query, Run

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset

log = logging.getLogger(__name__)

__all__ = ["DUQGenResult", "mine_negatives", "run_duqgen"]

CARD_FILE = "duqgen_card.json"
NEGATIVES_FILE = "negatives.trec"


@dataclass
class DUQGenResult:
    """Where the folder went, how many queries it holds, and the card written beside them."""

    output: Path
    queries: int
    card: dict[str, Any]


def _source_corpus_file(spec: str) -> Path | None:
    """The ``corpus.jsonl`` of a BEIR folder (linked into the output rather than copied), else None."""
    from rankkit.data.beir import is_beir_folder

    path = Path(spec).expanduser()
    return (path / "corpus.jsonl").resolve() if is_beir_folder(path) else None


def _load_corpus(spec: str) -> Dataset:
    """The documents of an ir_datasets id or a BEIR folder (a folder's queries and qrels are not read)."""
    from rankkit.data import load_dataset

    path = Path(spec).expanduser()
    return _beir_docs_only(path) if path.is_dir() else load_dataset(spec)


def _beir_docs_only(folder: Path) -> Dataset:
    """A BEIR folder's corpus with no queries (its qrels are never read)."""
    from rankkit.data.beir import is_beir_folder, iter_beir_corpus
    from rankkit.data.dataset import Dataset

    if not is_beir_folder(folder):
        raise DatasetError(f"{folder}: not a BEIR folder (no corpus.jsonl)")
    return Dataset(folder.name, lambda: iter_beir_corpus(folder / "corpus.jsonl"), [])


def mine_negatives(run: Run, positives: dict[str, str], depth: int, bottom: int, count: int) -> dict[str, list[str]]:
    """Per query, ``count`` negatives from the bottom ``bottom`` of its top ``depth`` (the positive skipped).

    The list is the query's ranking without its own document, cut at ``depth``; the
    negatives are the first ``count`` of its last ``bottom`` entries (rank order), as in DUQGen.
    """
    out: dict[str, list[str]] = {}
    for qid, pos in positives.items():
        ranked = [d for d in ([d for d, _ in run.ranked(qid)] if qid in run else []) if d != pos][:depth]
        out[qid] = ranked[max(len(ranked) - bottom, 0):][:count]
    return out


def _fingerprint(cfg: DUQGenConfig, docids: list[str]) -> str:
    spec = {"generate": to_mapping(cfg.generate), "seed": cfg.seed, "docs": docids}
    if cfg.generate.fewshot:
        spec["fewshot"] = hashlib.sha256(Path(cfg.generate.fewshot).read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def run_duqgen(cfg: DUQGenConfig, base: str | os.PathLike[str] = ".", show_progress: bool = True) -> DUQGenResult:
    """Build DUQGen's synthetic training folder for ``cfg.corpus`` (see the module docstring)."""
    from rankkit.runcard import run_card, write_json
    from rankkit.trec import atomic_dir

    started = time.perf_counter()
    cfg = cfg.resolve(Path(base))
    out = Path(cfg.output)
    times: dict[str, float] = {}
    # cheap checks first: the corpus, the filter, the budget, the few-shot file and template
    from rankkit.synth.querygen import load_query_template, read_fewshot

    template = load_query_template(cfg.generate.template)
    fewshot = read_fewshot(cfg.generate.fewshot, cfg.generate.doc_words) if cfg.generate.fewshot else []
    dataset = _load_corpus(cfg.corpus)
    docs = list(dataset.docs_iter())
    if not docs:
        raise DatasetError(f"corpus {cfg.corpus!r} is empty: DUQGen needs documents to write queries for")
    s = cfg.sample
    kept = [d for d in docs if len(d.contents) >= s.min_chars]
    if not kept:
        raise ConfigError(f"all {len(docs)} documents of {cfg.corpus!r} are shorter than sample.min_chars = "
                          f"{s.min_chars} characters: lower sample.min_chars")
    if s.n > len(kept):
        raise ConfigError(f"sample.n = {s.n} exceeds the {len(kept)} documents of {cfg.corpus!r} with at least "
                          f"{s.min_chars} characters")
    log.info("duqgen: %d of %d documents have >= %d characters", len(kept), len(docs), s.min_chars)

    t = time.perf_counter()
    # one dense stage: its corpus index gives the vectors here and (source: dense) the negatives' top `depth`
    dense = _dense(cfg, dataset, show_progress, hits=cfg.negatives.depth + 1)
    vectors = normalize_rows(dense.index.vectors([d.docid for d in kept]))
    times["embed_s"] = time.perf_counter() - t
    t = time.perf_counter()
    elbow_report = None
    if s.mode == "duqgen":
        if cfg.clusters.elbow:
            elbow_report = elbow(vectors, cfg.clusters.elbow, cfg.clusters.iterations, cfg.clusters.seed)
            log.info("duqgen: elbow over K = %s suggests K = %s (used: %d)", elbow_report["k"], elbow_report["knee"],
                     cfg.clusters.k)
        clusters = kmeans(vectors, cfg.clusters.k, cfg.clusters.iterations, cfg.clusters.seed)
        rows = sample_clusters(vectors, clusters, s.n, s.temperature, s.seeds, s.mmr_lambda)
        cluster_sizes = clusters.sizes().tolist()
    else:
        rows, cluster_sizes = uniform_sample(len(kept), s.n, s.seed), None
    sampled = [kept[i] for i in rows]
    times["sample_s"] = time.perf_counter() - t

    generation = _generate(cfg, sampled, template, fewshot, out, show_progress)
    times["generate_s"] = generation.generation_s
    queries = {f"duqgen-{docid}": (docid, text) for docid, text in generation.queries.items()}
    if not queries:
        raise DatasetError(f"the generator gave no usable query for any of the {len(sampled)} documents "
                           f"(dropped: {dict(generation.reasons)}); try another model or prompt")

    t = time.perf_counter()
    qlist = [Query(qid, text) for qid, (_, text) in queries.items()]
    n = cfg.negatives
    if n.source == "dense":
        first = dense(qlist, None)
    else:
        from rankkit.retrieve.bm25 import BM25

        first = BM25(dataset, hits=n.depth + 1, show_progress=show_progress)(qlist, None)
    negatives = mine_negatives(first, {q: d for q, (d, _) in queries.items()}, n.depth, n.bottom, n.count)
    times["negatives_s"] = time.perf_counter() - t

    card = {
        "method": "DUQGen (Chandradevan et al., NAACL 2024)",
        "config": to_mapping(cfg),
        "corpus_docs": len(docs), "eligible_docs": len(kept), "sampled_docs": len(sampled),
        "queries": len(queries), "generation": {"kept": len(queries), "reasons": dict(generation.reasons),
                                                "generated_tokens": generation.generated_tokens,
                                                "tokens_per_second": round(generation.tokens_per_second, 2),
                                                "resumed_docs": generation.resumed_docs},
        "fewshot_examples": len(fewshot), "cluster_sizes": cluster_sizes, "elbow": elbow_report,
        "negatives_per_query": {"min": min(map(len, negatives.values())), "max": max(map(len, negatives.values()))},
        "stage_seconds": {k: round(v, 2) for k, v in times.items()},
        "sampled_docids": [d.docid for d in sampled],
        "run_card": run_card(None, cfg.seed, time.perf_counter() - started),
    }
    source = _source_corpus_file(cfg.corpus)
    with atomic_dir(out) as tmp:
        if source is not None:
            os.symlink(source, tmp / "corpus.jsonl")
        else:
            with (tmp / "corpus.jsonl").open("w", encoding="utf-8") as fh:
                for d in docs:
                    fh.write(json.dumps({"_id": d.docid, "title": d.title, "text": d.text}) + "\n")
        with (tmp / "queries.jsonl").open("w", encoding="utf-8") as fh:
            for q in qlist:
                fh.write(json.dumps({"_id": q.qid, "text": q.text}) + "\n")
        (tmp / "qrels").mkdir()
        with (tmp / "qrels" / "train.tsv").open("w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for qid, (docid, _) in queries.items():
                fh.write(f"{qid}\t{docid}\t1\n")
        neg_run = Run({q: {d: float(-i) for i, d in enumerate(ds)} for q, ds in negatives.items() if ds})
        neg_run.to_trec(tmp / NEGATIVES_FILE, tag="duqgen-negatives")
        write_json(card, tmp / CARD_FILE)
    shutil.rmtree(_partial(out), ignore_errors=True)
    log.info("duqgen: wrote %d queries to %s", len(queries), out)
    return DUQGenResult(out, len(queries), card)


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _dense(cfg: DUQGenConfig, dataset: Dataset, show_progress: bool, hits: int) -> Any:
    from rankkit.retrieve.dense import Dense

    e = cfg.embed
    return Dense(dataset, model=e.model, max_length=e.max_length, batch_size=e.batch_size, precision=e.precision,
                 device=e.device, hits=hits, rerank="never", show_progress=show_progress)


def _generate(cfg: DUQGenConfig, docs: list[Document], template: Any, fewshot: list[tuple[str, str]], out: Path,
              show_progress: bool) -> Any:
    """Generate (or continue generating) the queries, with the batch log under ``<output>.partial``."""
    from rankkit.llm import load_causal_lm
    from rankkit.synth.querygen import generate_queries

    g = cfg.generate
    partial = _partial(out)
    key = _fingerprint(cfg, [d.docid for d in docs])
    state = partial / "state.json"
    if partial.is_dir() and (not state.is_file() or json.loads(state.read_text()).get("key") != key):
        log.warning("duqgen: %s holds generations made with other settings or documents; starting afresh", partial)
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"key": key}))
    model, tok = load_causal_lm(g.model, device=g.device, precision=g.precision)
    return generate_queries(docs, model, tok, template, fewshot, doc_words=g.doc_words,
                            max_new_tokens=g.max_new_tokens, batch_size=g.batch_size, temperature=g.temperature,
                            seed=cfg.seed, copy_min_words=g.copy_min_words, max_words=g.max_words,
                            log_path=partial / "generations.jsonl",
                            show_progress=show_progress)


def sampled_preview(folder: str | os.PathLike[str], count: int = 20, doc_chars: int = 300) -> list[dict[str, str]]:
    """Up to ``count`` generated queries of a DUQGen folder beside the start of their documents."""
    from rankkit.data.beir import iter_beir_corpus

    folder = Path(folder)
    qrels = {}
    for line in (folder / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, docid, _ = line.split("\t")
        qrels[qid] = docid
    queries = [json.loads(x) for x in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()][:count]
    wanted = {qrels[q["_id"]] for q in queries}
    texts = {d.docid: d.contents for d in iter_beir_corpus(folder / "corpus.jsonl") if d.docid in wanted}
    return [{"query": q["text"], "docid": qrels[q["_id"]], "document": texts[qrels[q["_id"]]][:doc_chars]}
            for q in queries]

