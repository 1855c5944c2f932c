"""Lucene index building, caching and crash safety (real Anserini, real SciFact)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError, IndexMissingError
from rankkit.index.lucene import MANIFEST, LuceneIndex, index_key, IndexSettings, trec_eval
from rankkit.types import Document, Qrels, Query


def _toy() -> Dataset:
    docs = [Document("d1", "the cat sat on the mat", "cats"), Document("d2", "dogs chase cats", "dogs"),
            Document("d3", "a treatise on lucene scoring", "search")]
    return Dataset("toy", lambda: iter(docs), [Query("q1", "cat")], Qrels({"q1": {"d1": 1}}))


def test_import_rankkit_does_not_start_jvm() -> None:
    code = "import sys, rankkit, rankkit.retrieve.bm25, rankkit.index.lucene; " \
           "print(any(m.startswith(('jnius', 'pyserini', 'torch')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_build_caches_by_fingerprint_and_settings(tmp_path: Path) -> None:
    ds = _toy()
    flat = LuceneIndex.build(ds, show_progress=False)
    again = LuceneIndex.build(ds, show_progress=False)
    multi = LuceneIndex.build(ds, multifield=True, show_progress=False)
    assert flat.path == again.path
    assert multi.path != flat.path and multi.multifield and not flat.multifield
    assert flat.num_docs() == 3
    assert flat.manifest["complete"] is True
    assert flat.path.name == index_key(ds.fingerprint(), IndexSettings())


def test_explicit_path_and_missing_index(tmp_path: Path) -> None:
    ds = _toy()
    index = LuceneIndex.build(ds, tmp_path / "idx", show_progress=False)
    assert LuceneIndex.load(tmp_path / "idx").path == index.path
    with pytest.raises(IndexMissingError, match="no Lucene index at .*nowhere"):
        LuceneIndex.load(tmp_path / "nowhere")
    other = Dataset("other", lambda: iter([Document("x", "different corpus")]), [])
    with pytest.raises(ConfigError, match="another corpus"):
        LuceneIndex.build(other, tmp_path / "idx", show_progress=False)


def test_incomplete_manifest_is_not_loaded(tmp_path: Path) -> None:
    ds = _toy()
    index = LuceneIndex.build(ds, tmp_path / "idx", show_progress=False)
    manifest = index.path / MANIFEST
    manifest.write_text(manifest.read_text().replace('"complete": true', '"complete": false'))
    with pytest.raises(IndexMissingError, match="incomplete"):
        LuceneIndex.load(index.path)
    rebuilt = LuceneIndex.build(ds, tmp_path / "idx", show_progress=False)
    assert rebuilt.manifest["complete"] is True


def test_killed_build_is_never_loaded_and_next_call_rebuilds(scifact_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "RANKKIT_CACHE_DIR": str(tmp_path / "cache")}
    script = textwrap.dedent(f"""
        from rankkit.data import load_dataset
        from rankkit.index.lucene import LuceneIndex
        LuceneIndex.build(load_dataset({str(scifact_dir)!r}), show_progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    lucene_dir = tmp_path / "cache" / "lucene"
    deadline = time.time() + 120
    killed_during_indexing = False
    while time.time() < deadline and proc.poll() is None:
        # Anserini is writing the index inside the temporary build folder: kill it now.
        if any(p.is_dir() for p in lucene_dir.glob(".build-*/index")):
            os.kill(proc.pid, signal.SIGKILL)
            killed_during_indexing = True
            break
        time.sleep(0.005)
    proc.wait()
    assert killed_during_indexing, "the build finished before it could be killed"
    finals = [p for p in lucene_dir.iterdir() if not p.name.startswith(".")]
    assert finals == [], "a killed build must not leave an index under its final name"
    assert list(lucene_dir.glob(".build-*")), "the killed build's temporary folder is left behind"

    from rankkit.data import load_dataset

    os.environ["RANKKIT_CACHE_DIR"], old = str(tmp_path / "cache"), os.environ["RANKKIT_CACHE_DIR"]
    try:
        index = LuceneIndex.build(load_dataset(str(scifact_dir)), show_progress=False)
    finally:
        os.environ["RANKKIT_CACHE_DIR"] = old
    assert index.manifest["complete"] and index.num_docs() == 5183
    assert not list(lucene_dir.glob(".build-*")), "stale build folders of dead processes are cleaned up"


def test_trec_eval_runs_without_system_java(tmp_path: Path) -> None:
    (tmp_path / "qrels").write_text("q1 0 d1 1\n")
    (tmp_path / "run").write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\n")
    env_path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        out = trec_eval(["-m", "ndcg_cut.10", str(tmp_path / "qrels"), str(tmp_path / "run")])
    finally:
        os.environ["PATH"] = env_path
    assert out.split()[-1] == "1.0000"
