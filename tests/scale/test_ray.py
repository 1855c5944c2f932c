"""The Ray backend on a local 2-CPU Ray cluster started here: same runs and indexes as one process,
a killed worker's blocks retried (or a clear error when retries run out), bad addresses refused."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from rankkit_test_helpers import slice_beir

if os.environ.get("CI"):
    import ray  # CI installs the ray extra (requirements.lock): a missing ray fails there
else:
    ray = pytest.importorskip("ray")

from rankkit.errors import ConfigError  # noqa: E402
from rankkit.scale.ray_backend import (  # noqa: E402
    RayAddressError,
    RayBlockError,
    RayPipeline,
    RaySettings,
    check_address,
)


def _crash_handlers() -> list[bytes]:
    """The handler addresses of the JVM's signals in this process (the first field of sigaction's struct)."""
    import ctypes

    from rankkit.index.lucene import _JVM_SIGNALS

    libc, out = ctypes.CDLL(None), []
    for name in _JVM_SIGNALS:
        state = ctypes.create_string_buffer(512)
        libc.sigaction(int(getattr(signal, name)), None, state)
        out.append(state.raw[:ctypes.sizeof(ctypes.c_void_p)])
    return out


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs (so 2 single-CPU workers), shared by this module.

    Started and stopped as rankkit does (`keep_signal_handlers`): this process runs the JVM
    for BM25, whose SIGSEGV handling Ray's crash handler would otherwise break.
    """
    from rankkit.index.lucene import keep_signal_handlers

    before = _crash_handlers()
    with keep_signal_handlers():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    assert _crash_handlers() == before, "ray.init changed the crash-signal handlers"
    yield ray
    before = _crash_handlers()
    with keep_signal_handlers():
        ray.shutdown()
    assert _crash_handlers() == before, "ray.shutdown changed the crash-signal handlers"


@pytest.fixture(scope="module")
def setup(scifact_dir: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A SciFact test slice (24 queries, 150 distractors), a tiny cross-encoder and BM25 >> CE YAML."""
    from rankkit.rerank.ce_model import CrossEncoderModel

    root = tmp_path_factory.mktemp("ray")
    data = slice_beir(scifact_dir, root / "scifact-slice", "test", 24, 150)
    ce = CrossEncoderModel.new(str(tiny_bert), head="mean", max_length=64, seed=3).save(root / "ce")
    yaml = root / "bm25_ce.yaml"
    yaml.write_text("name: bm25>>ce\nstages:\n  - bm25: {hits: 30, remove_query: true}\n"
                    f"  - cross_encoder: {{model: {ce}, depth: 15, batch_size: 16, precision: fp32, backend: torch}}\n")
    return {"data": data, "pipeline": yaml}


@pytest.fixture(scope="module")
def expected(setup: dict[str, Path]):
    """The slice's queries, and the single-process pipeline's run and counters on them."""
    from rankkit.data import load_dataset
    from rankkit.pipeline import Pipeline

    ds = load_dataset(setup["data"])
    pipeline = Pipeline.from_yaml(setup["pipeline"], ds, show_progress=False)
    return ds.queries, pipeline(ds.queries), pipeline.stats()


def _assert_same_run(a, b) -> None:
    assert set(a) == set(b)
    for qid in a:
        assert [d for d, _ in a.ranked(qid)] == [d for d, _ in b.ranked(qid)], qid
        for docid, score in a[qid].items():
            assert abs(score - b[qid][docid]) <= 1e-6, (qid, docid)


def test_cli_retrieve_on_ray_equals_one_process(cluster, setup: dict[str, Path], expected, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from rankkit.cli import app
    from rankkit.types import Run

    out = tmp_path / "run.trec"
    result = CliRunner().invoke(app, ["retrieve", "--pipeline", str(setup["pipeline"]), "--dataset",
                                      str(setup["data"]), "--output", str(out), "--quiet", "--ray",
                                      "--ray-workers", "2", "--ray-block-size", "5"])
    assert result.exit_code == 0, result.output
    _, run, stats = expected
    _assert_same_run(Run.from_trec(out), run)  # TREC files keep scores to 1e-6 at worst
    card = json.loads(Path(f"{out}.json").read_text())
    assert stats and card["stages"] == stats and card["config"]["ray"]["workers"] == 2  # counters summed over blocks


def test_killed_worker_blocks_are_retried(cluster, setup: dict[str, Path], expected) -> None:
    queries, run, _ = expected
    killed: list[int] = []

    def kill_first_worker(done: int, total: int) -> None:  # on the first finished block, most are still queued
        if not killed:
            killed.append(stage.worker_pids[0])
            os.kill(stage.worker_pids[0], signal.SIGKILL)

    stage = RayPipeline(setup["pipeline"], setup["data"], settings=RaySettings(workers=2, block_size=1, max_retries=2),
                        show_progress=False, on_block=kill_first_worker)
    got = stage(queries)
    _assert_same_run(got, run)
    assert len(set(stage.worker_pids)) == 2
    restarted = set(stage.block_pids) - set(stage.worker_pids)
    assert killed and restarted, "no block ran on a restarted worker"


def test_worker_death_without_retries_is_a_clear_error(cluster, setup: dict[str, Path], expected) -> None:
    queries, _, _ = expected

    def kill(done: int, total: int) -> None:
        if done == 1:
            os.kill(stage.worker_pids[0], signal.SIGKILL)

    stage = RayPipeline(setup["pipeline"], setup["data"], settings=RaySettings(workers=1, block_size=1, max_retries=0),
                        show_progress=False, on_block=kill)
    with pytest.raises(RayBlockError, match=r"block \d+ of 24 .* its Ray worker died 1 time\(s\) \(max_retries 0\)"):
        stage(queries)


def test_cli_dense_index_on_ray_equals_one_process(cluster, setup: dict[str, Path], tiny_bert: Path,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from rankkit.cli import app
    from rankkit.data import load_dataset
    from rankkit.index.faiss import DenseIndex
    from rankkit.retrieve.dense import Dense

    monkeypatch.setenv("RANKKIT_CACHE_DIR", str(tmp_path / "cache"))  # the workers see it too
    result = CliRunner().invoke(app, ["index", str(setup["data"]), "--kind", "dense", "--model", str(tiny_bert),
                                      "--output", str(tmp_path / "idx"), "--quiet", "--ray", "--ray-workers", "2",
                                      "--ray-block-size", "40"])
    assert result.exit_code == 0, result.output
    built = DenseIndex.load(tmp_path / "idx")
    ds = load_dataset(setup["data"])
    local = Dense(ds, model=str(tiny_bert), cache_dir=str(tmp_path / "local"))
    assert built.docids == local.index.docids
    qvecs = local.encoder.encode_queries([q.text for q in ds.queries])
    s1, d1 = local.index.search(qvecs, 10)
    s2, d2 = built.search(qvecs, 10)
    assert d1 == d2
    np.testing.assert_allclose(s1, s2, atol=1e-5)


def test_cli_unreachable_ray_address_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rankkit.cli import app

    result = CliRunner().invoke(app, ["retrieve", "--pipeline", "pipelines/bm25.yaml", "--dataset", "x",
                                      "--output", str(tmp_path / "r.trec"), "--ray", f"127.0.0.1:{_closed_port()}"])
    assert isinstance(result.exception, RayAddressError) and "cannot reach the Ray cluster" in str(result.exception)
    assert not (tmp_path / "r.trec").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:{port}", "cannot reach the Ray cluster at 127.0.0.1:"),
    ("ray://127.0.0.1:{port}", "cannot reach the Ray cluster at ray://127.0.0.1:"),
    ("http://127.0.0.1:80", "the scheme must be ray://"),
    ("my-head-node", "is not host:port"),
    ("host:99999", "is not host:port"),
])
def test_bad_ray_addresses_fail_fast(address: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(RayAddressError, match=message):
        check_address(address.format(port=_closed_port()))
    assert time.perf_counter() - start < 10


def test_local_and_auto_addresses_need_no_connection() -> None:
    assert check_address(None) is None and check_address("local") is None and check_address("auto") == "auto"


@pytest.mark.parametrize("settings, key", [
    ({"workers": 0}, "workers"), ({"block_size": 2.5}, "block_size"), ({"max_retries": -1}, "max_retries"),
    ({"cpus_per_worker": 0}, "cpus_per_worker"), ({"gpus_per_worker": "all"}, "gpus_per_worker"),
])
def test_bad_ray_settings_name_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        RaySettings(**settings)


def test_a_worker_that_cannot_start_is_a_clear_error(cluster, tmp_path: Path) -> None:
    from rankkit.errors import RankkitError
    from rankkit.scale.ray_encode import RayEncoder

    with pytest.raises(RankkitError, match="a Ray worker could not start: .*no-such-model"):
        with RayEncoder({"model": str(tmp_path / "no-such-model")}, RaySettings(workers=1), show_progress=False):
            pass
