"""Malformed pipeline, stage and experiment configs: every one is a ConfigError naming the file and the key.

Cheap: no Java (building a BM25 *config* never starts the JVM), no model weights, no datasets.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from rankkit.errors import ConfigError
from rankkit.pipeline import MAX_INCLUDE_DEPTH, Cutoff, Pipeline, Stage, describe, fuse, short_repr
from rankkit.types import Query, Run

DATASET = object()  # stages only keep the dataset; nothing here touches it


@pytest.fixture(autouse=True)
def _no_jvm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building configs and stages must never start the JVM."""
    import rankkit.index.lucene as lucene

    def refuse() -> None:
        raise AssertionError("the JVM was started while building a config")

    monkeypatch.setattr(lucene, "start_jvm", refuse)


class Fixed(Stage):
    """A retriever returning a fixed run."""

    def __init__(self, run: Run) -> None:
        self.run, self.name = run, "fixed"

    def transform(self, queries: list[Query], run: Run | None) -> Run:
        return self.run


RUN = Run({"q1": {"a": 2.0, "b": 1.0}})


def _load(tmp_path: Path, body: str, name: str = "p.yaml") -> Pipeline:
    path = tmp_path / name
    path.write_text(body)
    return Pipeline.from_yaml(path, dataset=DATASET, show_progress=False)


def _error(tmp_path: Path, body: str, name: str = "p.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body, name)
    message = str(info.value)
    assert name in message, message  # the file is named
    assert len(message) < 2000, message  # values are quoted in bounded form
    return message


# --- values of stage options ------------------------------------------------------------------


@pytest.mark.parametrize(("options", "key"), [
    ("{k1: .nan}", "bm25.k1"),
    ("{k1: .inf}", "bm25.k1"),
    ("{k1: -1}", "bm25.k1"),
    ("{k1: fast}", "bm25.k1"),
    ("{b: 1.5}", "bm25.b"),
    ("{b: '0.4'}", "bm25.b"),
    ("{fields: {title: x}}", "bm25.fields.title"),
    ("{fields: {title: -1.0}}", "bm25.fields.title"),
    ("{fields: {title: .nan}}", "bm25.fields.title"),
    ("{fields: [title]}", "bm25.fields"),
    ("{batch_size: -1}", "bm25.batch_size"),
    ("{batch_size: 0}", "bm25.batch_size"),
    ("{hits: 2.5}", "bm25.hits"),
    ("{hits: '10'}", "bm25.hits"),
    ("{hits: 0}", "bm25.hits"),
    ("{hits: true}", "bm25.hits"),
    ("{search_depth: 0}", "bm25.search_depth"),
    ("{threads: 0}", "bm25.threads"),
    ("{multifield: 'no'}", "bm25.multifield"),
    ("{remove_query: 1}", "bm25.remove_query"),
    ("{show_progress: 'false'}", "bm25.show_progress"),
    ("{index: 3}", "bm25.index"),
    ("{name: 7}", "bm25.name"),
    ("{name: [a, b]}", "bm25.name"),
    ("{k1: null}", "bm25.k1"),
])
def test_bm25_bad_values(tmp_path: Path, options: str, key: str) -> None:
    message = _error(tmp_path, f"stages:\n  - bm25: {options}\n")
    assert f"stages[0].{key}" in message, message


def test_bm25_cross_field_checks_are_kept(tmp_path: Path) -> None:
    message = _error(tmp_path, "stages:\n  - bm25: {hits: 10, search_depth: 5}\n")
    assert "stages[0].bm25" in message and "search_depth must be >= hits (10)" in message
    message = _error(tmp_path, f"stages:\n  - bm25: {{name: {'x' * 201}}}\n")
    assert "stages[0].bm25.name" in message


@pytest.mark.parametrize(("stage", "key"), [
    ("cross_encoder: {model: m, device: gpu}", "cross_encoder.device"),
    ("cross_encoder: {model: m, device: 'cuda:x'}", "cross_encoder.device"),
    ("cross_encoder: {model: m, batch_size: 0}", "cross_encoder.batch_size"),
    ("cross_encoder: {model: m, batch_size: -1}", "cross_encoder.batch_size"),
    ("cross_encoder: {model: m, depth: 0}", "cross_encoder.depth"),
    ("cross_encoder: {model: m, depth: 2.5}", "cross_encoder.depth"),
    ("cross_encoder: {model: m, precision: float16}", "cross_encoder.precision"),
    ("cross_encoder: {model: m, backend: tensorrt}", "cross_encoder.backend"),
    ("cross_encoder: {model: m, backend: torch, precision: int8}", "cross_encoder"),
    ("cross_encoder: {model: m, backend: onnx, precision: bf16}", "cross_encoder"),
    ("dense: {backend: onnx, precision: fp16}", "dense"),
    ("dense: {precision: int4}", "dense.precision"),
    ("cross_encoder: {model: m, interpolate: 2}", "cross_encoder.interpolate"),
    ("cross_encoder: {model: m, interpolate: half}", "cross_encoder.interpolate"),
    ("cross_encoder: {model: m, interpolate: .nan}", "cross_encoder.interpolate"),
    ("cross_encoder: {model: m, interpolate: true}", "cross_encoder.interpolate"),
    ("cross_encoder: {model: m, max_length: 0}", "cross_encoder.max_length"),
    ("cross_encoder: {model: m, show_progress: 'no'}", "cross_encoder.show_progress"),
    ("cross_encoder: {model: 5}", "cross_encoder.model"),
    ("cross_encoder: {}", "cross_encoder"),
    ("dense: {index: ivf}", "dense.index"),
    ("dense: {hnsw_m: 1}", "dense.hnsw_m"),
    ("dense: {ef_search: 0}", "dense.ef_search"),
    ("dense: {gpu: 'yes'}", "dense.gpu"),
    ("dense: {rerank: sometimes}", "dense.rerank"),
    ("dense: {hits: 0}", "dense.hits"),
    ("dense: {normalize: 'no'}", "dense.normalize"),
    ("dense: {max_length: 2.5}", "dense.max_length"),
    ("dense: {index: ivf_flat, nlist: 4, nprobe: 8}", "dense"),
    ("dense: {pq_nbits: 17}", "dense.pq_nbits"),
    ("dense: {nlist: 0}", "dense.nlist"),
    ("setwise: {method: quicksort}", "setwise.method"),
    ("setwise: {temperature: -1}", "setwise.temperature"),
    ("setwise: {temperature: .nan}", "setwise.temperature"),
    ("setwise: {num_child: 0}", "setwise.num_child"),
    ("setwise: {k: 2.5}", "setwise.k"),
    ("setwise: {parse: loose}", "setwise.parse"),
    ("setwise: {seed: -1}", "setwise.seed"),
    ("setwise: {shuffle: 'yes'}", "setwise.shuffle"),
    ("setwise: {passage_tokens: 0}", "setwise.passage_tokens"),
])
def test_reranker_bad_values(tmp_path: Path, stage: str, key: str) -> None:
    message = _error(tmp_path, f"stages:\n  - bm25: {{}}\n  - {stage}\n")
    assert f"stages[1].{key}" in message, message


def test_valid_values_still_load(tmp_path: Path) -> None:
    p = _load(tmp_path, "stages:\n  - bm25: {k1: 1, b: 0, fields: {title: 2, contents: 1.5}, threads: 1}\n"
                        "  - cross_encoder: {model: m, device: 'cuda:1', interpolate: 1, depth: null}\n")
    bm25, ce = p.stages
    assert (bm25.config.k1, bm25.config.b, bm25.config.fields) == (1, 0, {"title": 2, "contents": 1.5})
    assert (ce.config.device, ce.config.interpolate, ce.config.depth) == ("cuda:1", 1, None)
    p = _load(tmp_path, "stages:\n  - bm25:\n  - dense: {gpu: false, index: hnsw, device: cpu}\n"
                        "  - cross_encoder: {model: m, interpolate: auto, precision: bf16}\n")
    assert p.stages[0].config.hits == 1000  # `- bm25:` without options: the defaults
    assert p.stages[1].config.gpu is False and p.stages[2].config.interpolate == "auto"


# --- structure of pipeline files --------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    ("- bm25: {}\n", "must be a mapping with a 'stages' list"),
    ("stages: 3\n", "stages must be a non-empty list"),
    ("stages: {bm25: {}}\n", "stages must be a non-empty list"),
    ("stages:\n", "stages must be a non-empty list"),
    ("stages: []\n", "stages must be a non-empty list"),
    ("name: x\n", "missing key 'stages'"),
    ("stagez: []\n", "unknown top-level key 'stagez' (did you mean 'stages'?)"),
    ("stages:\n  - [bm25, {}]\n", "stages[0] must be a stage"),
    ("stages:\n  - 3\n", "stages[0] must be a stage"),
    ("stages:\n  - null\n", "stages[0] must be a stage"),
    ("stages:\n  - {}\n", "stages[0]: a stage is a mapping with exactly one key"),
    ("stages:\n  - {bm25: {}, dense: {}}\n", "stages[0]: a stage is a mapping with exactly one key"),
    ("stages:\n  - bm26: {}\n", "stages[0]: unknown stage type 'bm26' (did you mean 'bm25'?)"),
    ("stages:\n  - 3: {}\n", "stages[0]: unknown stage type 3"),
    ("stages:\n  - bm25: [1, 2]\n", "stages[0].bm25 must be a mapping"),
    ("stages:\n  - bm25: 3\n", "stages[0].bm25 must be a mapping"),
    ("stages:\n  - bm25: fast\n", "stages[0].bm25 must be a mapping"),
    ("stages:\n  - pipeline:\n", "stages[0].pipeline must be the path of a pipeline YAML file"),
    ("stages:\n  - pipeline: 3\n", "stages[0].pipeline must be the path of a pipeline YAML file"),
    ("stages:\n  - pipeline: {file: x.yaml}\n", "stages[0].pipeline must be the path of a pipeline YAML file"),
    ("stages:\n  - bm25: {}\n  - cutoff: '10'\n", "stages[1].cutoff must be an integer >= 1"),
    ("stages:\n  - bm25: {}\n  - cutoff: 2.5\n", "stages[1].cutoff must be an integer >= 1"),
    ("stages:\n  - bm25: {}\n  - cutoff: 0\n", "stages[1].cutoff must be an integer >= 1"),
    ("stages:\n  - bm25: {}\n  - cutoff: true\n", "stages[1].cutoff must be an integer >= 1"),
    ("stages:\n  - bm25: {}\n  - cutoff:\n", "stages[1].cutoff must be an integer >= 1"),
    ("stages:\n  - bm25: {}\n  - cutoff: [10]\n", "stages[1].cutoff must be an integer >= 1"),
    ("stages:\n  - fuse: [a.yaml, b.yaml]\n", "stages[0].fuse must be a mapping with 'inputs'"),
    ("stages:\n  - fuse:\n", "stages[0].fuse must be a mapping with 'inputs'"),
    ("stages:\n  - fuse: {inputs: a.yaml}\n", "stages[0].fuse.inputs"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}]}\n", "stages[0].fuse.inputs"),
    ("stages:\n  - fuse: {method: rrf}\n", "stages[0].fuse.inputs"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, 3]}\n", "stages[0].fuse.inputs[1] must be a non-empty list of stages"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, [{bm25: {hits: 0}}]]}\n", "stages[0].fuse.inputs[1][0].bm25.hits"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], method: rff}\n", "stages[0].fuse.method"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], norm: minmax}\n", "stages[0].fuse.norm"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], params: [60]}\n", "stages[0].fuse.params"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], params: {kk: 60}}\n",
     "stages[0].fuse.params: unknown parameter 'kk' (did you mean 'k'?)"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], params: {k: -1}}\n", "stages[0].fuse.params.k"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], method: wsum}\n", "stages[0].fuse.params.weights: missing"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], method: wsum, params: {weights: [1]}}\n",
     "stages[0].fuse.params.weights must be a list of 2 finite numbers"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], method: wsum, params: {weights: [1, x]}}\n",
     "stages[0].fuse.params.weights"),
    ("stages:\n  - fuse: {inputs: [{bm25: {}}, {bm25: {}}], name: [x]}\n", "stages[0].fuse.name"),
    ("name: [x]\nstages:\n  - bm25: {}\n", "name must be a name"),
    (f"name: {'n' * 201}\nstages:\n  - bm25: {{}}\n", "name must be a name"),
    ("name: 42\nstages:\n  - bm25: {}\n", "name must be a name"),
    ("description: [x]\nstages:\n  - bm25: {}\n", "description must be a string"),
])
def test_wrong_shapes(tmp_path: Path, body: str, expected: str) -> None:
    message = _error(tmp_path, body)
    assert expected in message, message


def test_self_include_is_a_cycle(tmp_path: Path) -> None:
    message = _error(tmp_path, "stages:\n  - pipeline: self.yaml\n", "self.yaml")
    assert "stages[0].pipeline: pipeline include cycle" in message
    assert f"{(tmp_path / 'self.yaml').resolve()} -> {(tmp_path / 'self.yaml').resolve()}" in message


def test_cyclic_includes_name_the_cycle(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("stages:\n  - bm25: {}\n  - pipeline: c.yaml\n")
    (tmp_path / "c.yaml").write_text("stages: [b.yaml]\n")  # a bare string is an include too
    message = _error(tmp_path, "stages:\n  - pipeline: b.yaml\n", "a.yaml")  # the chain names a.yaml
    a, b, c = ((tmp_path / f"{x}.yaml").resolve() for x in "abc")
    assert message.startswith(f"{tmp_path / 'c.yaml'}: stages[0].pipeline: pipeline include cycle: "
                              f"{a} -> {b} -> {c} -> {b}")
    # the same file twice side by side is no cycle
    (tmp_path / "leaf.yaml").write_text("stages:\n  - bm25: {}\n")
    p = _load(tmp_path, "stages:\n  - fuse: {inputs: [leaf.yaml, leaf.yaml]}\n", "twice.yaml")
    assert len(p.stages[0].stages) == 2


def test_directory_include(tmp_path: Path) -> None:
    message = _error(tmp_path, "stages:\n  - pipeline: .\n")
    assert "stages[0].pipeline: '.' is a directory" in message
    (tmp_path / "sub").mkdir()
    message = _error(tmp_path, "stages:\n  - bm25: {}\n  - cutoff: 5\n  - pipeline: sub\n")
    assert "stages[2].pipeline: 'sub' is a directory" in message
    with pytest.raises(ConfigError, match="folder"):
        Pipeline.from_yaml(tmp_path)


def test_missing_include_names_the_including_file_and_key(tmp_path: Path) -> None:
    message = _error(tmp_path, "stages:\n  - bm25: {}\n  - pipeline: absent.yaml\n", "outer.yaml")
    assert message.startswith(f"{tmp_path / 'outer.yaml'}: stages[1].pipeline: included pipeline file")
    assert "absent.yaml not found" in message
    message = _error(tmp_path, "stages:\n  - fuse: {inputs: [{bm25: {}}, gone.yaml]}\n", "outer.yaml")
    assert "stages[0].fuse.inputs[1][0].pipeline: included pipeline file" in message


def test_include_depth_is_bounded(tmp_path: Path) -> None:
    n = MAX_INCLUDE_DEPTH + 3
    for i in range(n):
        (tmp_path / f"p{i}.yaml").write_text(f"stages: [p{i + 1}.yaml]\n")
    (tmp_path / f"p{n}.yaml").write_text("stages:\n  - bm25: {}\n")
    with pytest.raises(ConfigError, match=f"nest deeper than {MAX_INCLUDE_DEPTH} files"):
        Pipeline.from_yaml(tmp_path / "p0.yaml", dataset=DATASET)
    # a chain within the bound loads
    assert isinstance(Pipeline.from_yaml(tmp_path / f"p{n - MAX_INCLUDE_DEPTH + 1}.yaml", dataset=DATASET), Pipeline)


def _bomb(levels: int) -> str:
    """A flow list whose anchors nest ``levels`` deep, 9 aliases each (9**levels strings once expanded)."""
    parts = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize("levels", [6, 9])  # under and far over the loader's alias bound
def test_alias_bomb_in_name(tmp_path: Path, levels: int) -> None:
    start = time.perf_counter()
    message = _error(tmp_path, f"name: {_bomb(levels)}\nstages:\n  - bm25: {{}}\n")
    assert time.perf_counter() - start < 10
    assert "name" in message or "aliases" in message, message
    message = _error(tmp_path, f"stages:\n  - bm25: {{name: {_bomb(levels)}}}\n")
    assert "bm25.name" in message or "aliases" in message, message
    message = _error(tmp_path, f"stages:\n  - bm25: {{}}\n  - cutoff: {_bomb(levels)}\n")
    assert "cutoff" in message or "aliases" in message, message


def test_messages_quote_values_in_bounded_form() -> None:
    leaf: list = ["lol"] * 9
    for _ in range(12):  # 9**13 strings if walked in full
        leaf = [leaf] * 9
    start = time.perf_counter()
    assert len(short_repr(leaf)) <= 80 and len(describe(leaf)) < 100
    assert len(short_repr("x" * 10**6)) <= 80
    assert short_repr(10**5000).startswith("<an integer")
    assert time.perf_counter() - start < 1
    assert describe(None) == "null" and describe("a") == "a string 'a'"


# --- the Python API goes through the same checks ----------------------------------------------


def test_python_api_gets_the_same_errors() -> None:
    from rankkit import BM25, CrossEncoder, Dense, Setwise
    from rankkit.retrieve.bm25 import BM25Config

    with pytest.raises(ConfigError, match=r"BM25\.k1 must be a number >= 0, got 'x'"):
        BM25(k1="x")
    with pytest.raises(ConfigError, match=r"BM25\.k1 must be a finite number"):
        BM25(index="idx", k1=math.nan)
    with pytest.raises(ConfigError, match=r"BM25\.hits must be >= 1"):
        BM25(index="idx", hits=2.5)
    with pytest.raises(ConfigError, match=r"BM25\.multifield must be true or false"):
        BM25(index="idx", multifield="no")
    with pytest.raises(ConfigError, match=r"CrossEncoder\.batch_size must be an integer >= 1"):
        CrossEncoder(model="m", batch_size=0)
    with pytest.raises(ConfigError, match=r"CrossEncoder\.device must be one of auto, cpu, cuda, cuda:N, mps"):
        CrossEncoder(model="m", device="gpu")
    with pytest.raises(ConfigError, match=r"CrossEncoder\.model must be given"):
        CrossEncoder()
    with pytest.raises(ConfigError, match=r"Dense\.hits must be an integer >= 1"):
        Dense(DATASET, hits=0)
    with pytest.raises(ConfigError, match=r"Setwise\.temperature"):
        Setwise(temperature=math.inf)
    # a config object built in Python is checked too, and cannot be mixed with keywords
    with pytest.raises(ConfigError, match=r"BM25Config\.k1"):
        BM25Config(k1="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="either a config or keyword options"):
        BM25(index="idx", config=BM25Config(index="idx"), hits=5)
    with pytest.raises(ConfigError, match="must be a BM25Config"):
        BM25(config={"k1": 1.0})
    assert BM25(config=BM25Config(index="idx", k1=1)).config.k1 == 1


def test_python_cutoff_fuse_and_pipeline_names() -> None:
    for bad in (2.5, True, "3", 0, None):
        with pytest.raises(ConfigError, match="cutoff must be an integer >= 1"):
            Cutoff(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cutoff must be an integer >= 1"):
        Fixed(RUN) % 2.5  # type: ignore[operator]
    with pytest.raises(ConfigError, match=r"fuse\.method .*did you mean 'rrf'"):
        fuse([Fixed(RUN), Fixed(RUN)], method="rff")
    with pytest.raises(ConfigError, match=r"fuse\.params\.weights must be a list of 2 finite numbers"):
        fuse([Fixed(RUN), Fixed(RUN)], method="wsum", weights=[1.0])
    with pytest.raises(ConfigError, match=r"fuse\.params: unknown parameter 'c'"):
        fuse([Fixed(RUN), Fixed(RUN)], method="rrf", c=60)
    with pytest.raises(ConfigError, match="pipeline name must be a name"):
        Pipeline([Fixed(RUN)], name=5)  # type: ignore[arg-type]
    assert fuse([Fixed(RUN), Fixed(RUN)], method="wsum", weights=[0.5, 0.5]).params == {"weights": [0.5, 0.5]}


# --- experiments and the reproduction matrix --------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    ("pipelines: {a: p.yaml}\n", "missing required key 'dataset'"),
    ("dataset: d\npipelines: [p.yaml]\n", "pipelines must be"),
    ("dataset: d\npipelines: {}\n", "pipelines must be"),
    ("dataset: d\npipelines: {a: 3}\n", "pipelines.a must be"),
    ("dataset: d\npipelines: {a: p.yaml}\nalpha: 2\n", "alpha must be"),
    ("dataset: d\npipelines: {a: p.yaml}\nalpha: .nan\n", "alpha must be"),
    ("dataset: d\npipelines: {a: p.yaml}\nseed: -1\n", "seed must be"),
    ("dataset: d\npipelines: {a: p.yaml}\nstat_test: welch\n", "stat_test must be one of student, fisher, tukey"),
    ("dataset: d\npipelines: {a: p.yaml}\ncorrection: bh\n", "correction must be one of holm, bonferroni, none"),
    ("dataset: d\npipelines: {a: p.yaml}\nmetrics: ndcg@10\n", "metrics must be"),
    ("dataset: d\npipelines: {a: p.yaml}\nnum_queries: 0\n", "num_queries must be"),
    ("dataset: d\npipelines: {a: p.yaml}\nbaseline: b\n", "baseline 'b' is not one of the pipelines"),
    ("dataset: d\npipelines: {a: absent.yaml}\n", "pipelines.a: pipeline file"),
    ("dataset: d\npipelines: {a: sub}\n", "pipelines.a:"),
    ("dataset: d\npipelines: {a/b: p.yaml}\nruns_dir: runs\n", "cannot name a file in runs_dir"),
    ("[1]\n", "an experiment file must be a mapping"),
])
def test_experiment_config_errors(tmp_path: Path, body: str, expected: str) -> None:
    from rankkit.experiment import load_experiment

    (tmp_path / "p.yaml").write_text("stages:\n  - bm25: {}\n")
    (tmp_path / "sub").mkdir()
    path = tmp_path / "exp.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert "exp.yaml" in str(info.value) and expected in str(info.value), str(info.value)


def test_valid_experiment_loads(tmp_path: Path) -> None:
    from rankkit.experiment import load_experiment

    (tmp_path / "p.yaml").write_text("stages:\n  - bm25: {}\n")
    path = tmp_path / "exp.yaml"
    path.write_text("dataset: d\npipelines: {a: p.yaml, b>>c: p.yaml}\nbaseline: a\nalpha: 0.01\nseed: 1\n")
    cfg = load_experiment(path)
    assert cfg.baseline == "a" and cfg.alpha == 0.01 and list(cfg.pipelines) == ["a", "b>>c"]


@pytest.mark.parametrize(("rows", "expected"), [
    ("rows: 3\n", "rows must be a non-empty list"),
    ("rows: [3]\n", "rows[0] must be a mapping"),
    ("rows:\n  - {dataset: d, pipeline: p.yaml, expected: {}}\n", "rows[0].expected must be"),
    ("rows:\n  - {dataset: d, pipeline: p.yaml, expected: {ndcg@10: x}}\n", "rows[0].expected.ndcg@10 must be"),
    ("rows:\n  - {dataset: d, pipeline: p.yaml, expected: {ndcg@10: 0.5}, tolerance: {ndcg@10: -1}}\n",
     "rows[0].tolerance.ndcg@10 must be"),
    ("rows:\n  - {dataset: d, pipeline: p.yaml, expected: {ndcg@10: 0.5}, tolerance: {map: 0.1}}\n",
     "tolerance: 'map' is not one of the expected metrics"),
    ("rows:\n  - {dataset: d, pipeline: p.yaml, expected: {ndcg@10: 0.5}}\n"
     "  - {dataset: d, pipeline: gone.yaml, expected: {ndcg@10: 0.5}}\n", "rows[1].pipeline: pipeline file"),
    ("rows: []\nextra: 1\n", "unknown top-level key(s) 'extra'"),
])
def test_matrix_rows_are_checked_before_anything_runs(tmp_path: Path, rows: str, expected: str) -> None:
    from rankkit.experiment import check_matrix

    (tmp_path / "p.yaml").write_text("stages:\n  - bm25: {}\n")
    path = tmp_path / "matrix.yaml"
    path.write_text(rows)
    with pytest.raises(ConfigError) as info:
        check_matrix(path, show_progress=False)
    assert "matrix.yaml" in str(info.value) and expected in str(info.value), str(info.value)


# --- index arguments --------------------------------------------------------------------------


def test_lucene_arguments_are_checked_before_java() -> None:
    from rankkit.index.lucene import IndexSettings, LuceneIndex, check_bm25_params

    assert check_bm25_params(1, 0.5) == (1.0, 0.5)
    for k1, b in ((math.nan, 0.4), (-1, 0.4), ("0.9", 0.4), (0.9, 1.5), (0.9, math.inf), (True, 0.4)):
        with pytest.raises(ConfigError, match="BM25 (k1|b) must be"):
            check_bm25_params(k1, b)
    with pytest.raises(ConfigError, match="BM25 k1"):
        LuceneIndex("nowhere").searcher(k1=math.nan)  # raised before the JVM (the fixture refuses it)
    for bad in ({"threads": 0}, {"threads": 2.5}, {"multifield": "no"}, {"stemmer": "snowball"}):
        with pytest.raises(ConfigError, match="index settings"):
            IndexSettings(**bad)  # type: ignore[arg-type]


def test_faiss_arguments_are_checked() -> None:
    np = pytest.importorskip("numpy")
    from rankkit.index.faiss import DenseIndex

    emb = np.eye(4, dtype=np.float32)
    with pytest.raises(ConfigError, match="hnsw_m must be an integer >= 2"):
        DenseIndex.build(emb, ["a", "b", "c", "d"], kind="hnsw", hnsw_m=1, gpu=False)
    with pytest.raises(ConfigError, match="ef_search must be an integer >= 1"):
        DenseIndex.build(emb, ["a", "b", "c", "d"], ef_search=0, gpu=False)
    index = DenseIndex.build(emb, ["a", "b", "c", "d"], gpu=False)
    with pytest.raises(ConfigError, match="k must be an integer"):
        index.search(emb[:1], 2.5)  # type: ignore[arg-type]
    _, found = index.search(emb[:1], 2)
    assert len(found[0]) == 2 and found[0][0] == "a"
