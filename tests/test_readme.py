"""Every example in README.md runs as written, against a small slice of SciFact.

Each ```python block runs in a fresh interpreter whose working directory holds the
repository's ``pipelines/`` and whose ``RANKKIT_DATA_DIR`` is a 15-query slice of SciFact
test, so the README's own ids and paths (``beir/scifact/test``, ``pipelines/...``) are used
unchanged. The inline loose-files example of the Data section runs the same way, on TREC
and JSONL files cut from the slice.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rankkit_test_helpers import slice_beir

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def loose_files_example(text: str) -> str:
    """The inline ``load_dataset(queries=..., qrels=..., corpus=...)`` call of the Data section."""
    match = re.search(r"`(load_dataset\(queries=[^`]*\))`", text)
    assert match, "README no longer shows the loose-files example"
    return match.group(1)


@pytest.fixture(scope="module")
def workdir(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A working folder (pipelines/ linked, loose TREC files written) and the environment to run in."""
    root = tmp_path_factory.mktemp("readme")
    data = root / "data"
    sliced = slice_beir(scifact_dir, data / "beir" / "scifact", "test", 15, 200)
    work = root / "work"
    work.mkdir()
    (work / "pipelines").symlink_to(ROOT / "pipelines")
    queries = [json.loads(line) for line in (sliced / "queries.jsonl").read_text().splitlines()]
    (work / "topics.tsv").write_text("".join(f"{q['_id']}\t{q['text']}\n" for q in queries))
    rows = (sliced / "qrels" / "test.tsv").read_text().splitlines()[1:]
    (work / "qrels.txt").write_text("".join(f"{q} 0 {d} {g}\n" for q, d, g in (r.split("\t") for r in rows)))
    (work / "docs.jsonl").write_text((sliced / "corpus.jsonl").read_text())
    env = dict(os.environ, RANKKIT_DATA_DIR=str(data), IR_DATASETS_HOME=str(root / "irds"),
               RANKKIT_CACHE_DIR=str(root / "cache"))
    return work, env


def _run(code: str, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], check=False, cwd=work, env=env, capture_output=True, text=True,
                          timeout=900)


def test_readme_has_python_examples() -> None:
    assert python_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text(encoding="utf-8")))))
def test_readme_python_block_runs(index: int, workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    code = python_blocks(README.read_text(encoding="utf-8"))[index]
    proc = _run(code, work, env)
    assert proc.returncode == 0, f"README python block {index + 1} failed:\n{code}\n{proc.stderr[-3000:]}"


def test_readme_loose_files_example_runs(workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    call = loose_files_example(README.read_text(encoding="utf-8"))
    proc = _run(f"import rankkit\nds = rankkit.{call}\nprint(len(ds.queries), len(ds.qrels))", work, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["15", "15"]
