"""Offline priming of the ir_datasets cache from a data dir (no ir_datasets import needed)."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from rankkit.data import prime, prime_all, prime_beir_folder
from rankkit.data.prime import local_sources, source_for
from rankkit.errors import DatasetError


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    data, home = tmp_path / "data", tmp_path / "irds"
    data.mkdir()
    monkeypatch.setenv("RANKKIT_DATA_DIR", str(data))
    monkeypatch.setenv("IR_DATASETS_HOME", str(home))
    return SimpleNamespace(data=data, home=home)


def test_beir_folder_becomes_source_zip(dirs: SimpleNamespace, beir: SimpleNamespace) -> None:
    beir.make(dirs.data / "beir" / "tiny")
    assert prime("beir/tiny/test") is True
    target = dirs.home / "beir" / "tiny" / "source.zip"
    with zipfile.ZipFile(target) as zf:
        assert sorted(zf.namelist()) == [
            "tiny/corpus.jsonl",
            "tiny/qrels/test.tsv",
            "tiny/qrels/train.tsv",
            "tiny/queries.jsonl",
        ]
        assert zf.read("tiny/corpus.jsonl") == (dirs.data / "beir" / "tiny" / "corpus.jsonl").read_bytes()
    assert prime("beir/tiny/test") is False  # already in place: never rewritten
    assert prime("beir/other/test") is False
    assert not [p for p in target.parent.iterdir() if p.name != "source.zip"]  # no temp file left behind


def test_classic_collections(dirs: SimpleNamespace) -> None:
    cran = dirs.data / "classic" / "cranfield"
    cran.mkdir(parents=True)
    (cran / "cran.tar.gz").write_bytes(b"opaque archive bytes")
    npl = dirs.data / "classic" / "vaswani"
    npl.mkdir(parents=True)
    for name in ("doc-text", "query-text", "rlv-ass"):
        (npl / name).write_text(f"{name}\n", encoding="utf-8")
    dl = dirs.data / "trec-dl-2019"
    dl.mkdir()
    (dl / "2019qrels-pass.txt").write_text("19335 0 1017759 0\n", encoding="utf-8")

    assert sorted(prime_all()) == ["cranfield", "msmarco-passage/trec-dl-2019", "vaswani"]
    assert (dirs.home / "cranfield" / "cran.tar.gz").read_bytes() == b"opaque archive bytes"
    with tarfile.open(dirs.home / "vaswani" / "npl.tar.gz") as tf:
        assert sorted(tf.getnames()) == ["doc-text", "query-text", "rlv-ass"]
        assert tf.extractfile("rlv-ass").read() == b"rlv-ass\n"  # type: ignore[union-attr]
    assert (dirs.home / "msmarco-passage" / "trec-dl-2019" / "qrels").is_file()
    assert prime("cranfield") is False and prime_all() == []
    assert source_for("msmarco-passage/trec-dl-2019/judged") is not None
    assert {s.prefix: s.loadable for s in local_sources()}["msmarco-passage/trec-dl-2019"] is False


def test_cranfield_from_members(dirs: SimpleNamespace) -> None:
    cran = dirs.data / "classic" / "cranfield"
    cran.mkdir(parents=True)
    for name in ("cran.all.1400", "cran.qry", "cranqrel"):
        (cran / name).write_text("x\n", encoding="utf-8")
    assert prime("cranfield") is True
    with tarfile.open(dirs.home / "cranfield" / "cran.tar.gz") as tf:
        assert sorted(tf.getnames()) == ["cran.all.1400", "cran.qry", "cranqrel"]


def test_nothing_to_prime_without_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RANKKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path))
    assert prime("cranfield") is False and local_sources() == []


def test_prime_beir_folder_under_another_name(dirs: SimpleNamespace, beir: SimpleNamespace, tmp_path: Path) -> None:
    folder = beir.make(tmp_path / "elsewhere" / "my-copy")
    target = prime_beir_folder(folder, name="nfcorpus")
    assert target == dirs.home / "beir" / "nfcorpus" / "source.zip"
    (target.parent / "queries.json").write_text("stale", encoding="utf-8")
    with zipfile.ZipFile(target) as zf:
        assert "nfcorpus/queries.jsonl" in zf.namelist()
    prime_beir_folder(folder, name="nfcorpus")
    assert (target.parent / "queries.json").exists()  # kept: no overwrite
    prime_beir_folder(folder, name="nfcorpus", overwrite=True)
    assert not (target.parent / "queries.json").exists()  # derived caches of the old zip dropped
    with pytest.raises(DatasetError, match="is not a BEIR folder"):
        prime_beir_folder(tmp_path / "elsewhere")
