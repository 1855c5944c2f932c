"""Fuzz suite: 2,400 seeded malformed inputs across every reader and config, in-process.

Every case must end in one of two ways: accepted (the input was still valid), or an error
of rankkit's own (:class:`~rankkit.errors.RankkitError`, which names the file, line or key).
Any other exception, or a case that runs past its time limit, fails the test with the case
index, kind and mutations, so ``generate(N, SEED)[index]`` reproduces it. A sample of the
rejected cases then goes through the installed CLI, which must exit 2 with one line and no
traceback. Set ``RANKKIT_FUZZ_REPORT=path.json`` to write the counts by outcome.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fuzz_cases import CORPUS, QRELS_TREC, QRELS_TSV, QUERIES_JSONL, RUN, Case, generate

from rankkit.errors import RankkitError

ROOT = Path(__file__).resolve().parents[1]
N_CASES = 2400
SEED = 20261130
TIME_LIMIT_S = 20  # per case; a hang, not a speed target (a first-time numba compile can take seconds)


class _Hang(Exception):
    pass


@dataclass
class Outcome:
    """What one case did: ``accepted``, ``rankkit`` (a RankkitError), ``foreign`` or ``hang``."""

    case: Case
    outcome: str
    error: str = ""


class Workspace:
    """Files the loaders read: a BEIR folder, a copy of pipelines/ and an eval/ folder beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.beir = root / "beir"
        (self.beir / "qrels").mkdir(parents=True)
        self.pipelines = root / "pipelines"
        shutil.copytree(ROOT / "pipelines", self.pipelines)
        (root / "eval").mkdir()
        self.loose = root / "loose"
        self.loose.mkdir()
        self.reset_beir()
        shutil.copytree(self.beir, root / "valid-beir")
        self.dataset = None

    def valid_dataset(self) -> Any:
        """A valid tiny dataset for the pipeline stages to be built on (loaded once)."""
        if self.dataset is None:
            import rankkit

            self.dataset = rankkit.load_dataset(str(self.root / "valid-beir"), split="test")
        return self.dataset

    def reset_beir(self) -> None:
        """Write the valid BEIR folder again (a case mutates one of its files)."""
        (self.beir / "corpus.jsonl").write_text(CORPUS)
        (self.beir / "queries.jsonl").write_text(QUERIES_JSONL)
        (self.beir / "qrels" / "test.tsv").write_text(QRELS_TSV)

    def place(self, case: Case) -> Path:
        """Write the case's content where its loader reads it; return that path."""
        target = {
            "run": self.loose / "run.trec",
            "qrels_trec": self.loose / "qrels.txt",
            "queries_tsv": self.loose / "queries.tsv",
            "qrels_tsv": self.beir / "qrels" / "test.tsv",
            "corpus": self.beir / "corpus.jsonl",
            "queries_jsonl": self.beir / "queries.jsonl",
            "pipeline": self.pipelines / f"fuzz-{case.name}",
            "train": self.pipelines / f"fuzz-{case.name}",
            "llm_train": self.pipelines / f"fuzz-{case.name}",
            "experiment": self.root / "eval" / "fuzz-experiment.yaml",
            "synth": self.pipelines / f"fuzz-{case.name}",
            "fewshot": self.loose / "fewshot.jsonl",
        }[case.kind]
        target.write_bytes(case.content)
        return target


def _valid_run(tmp: Path) -> Any:
    from rankkit.types import Run

    path = tmp / "valid.trec"
    if not path.exists():
        path.write_text(RUN)
    return Run.from_trec(path)


def _valid_qrels(tmp: Path) -> Any:
    from rankkit.types import Qrels

    path = tmp / "valid-qrels.txt"
    if not path.exists():
        path.write_text(QRELS_TREC)
    return Qrels.from_trec(path)


def loaders(ws: Workspace) -> dict[str, Callable[[Path, Case], Any]]:
    """kind -> a function that reads the case's file the way rankkit's API and CLI do."""
    import rankkit
    from rankkit.data.files import read_queries
    from rankkit.evaluate import evaluate
    from rankkit.experiment import load_experiment
    from rankkit.pipeline import Pipeline
    from rankkit.synth.config import DUQGenConfig
    from rankkit.synth.querygen import read_fewshot
    from rankkit.train.config import TrainConfig, load_config
    from rankkit.train.llm_config import RankR1Config, SetwiseSFTConfig
    from rankkit.types import Qrels, Run

    def run(path: Path, case: Case) -> Any:
        parsed = Run.from_trec(path)
        return evaluate(parsed, _valid_qrels(ws.root), ["ndcg@10", "recall@5"])

    def qrels_trec(path: Path, case: Case) -> Any:
        parsed = Qrels.from_trec(path)
        return evaluate(_valid_run(ws.root), parsed, ["ndcg@10"])

    def beir(path: Path, case: Case) -> Any:
        ds = rankkit.load_dataset(str(ws.beir), split="test")
        return len(list(ds.docs_iter())), ds.query_texts(), dict(ds.qrels)

    def llm(path: Path, case: Case) -> Any:
        return load_config(RankR1Config if "grpo" in case.name else SetwiseSFTConfig, path)

    return {
        "run": run,
        "qrels_trec": qrels_trec,
        "qrels_tsv": beir,
        "corpus": beir,
        "queries_jsonl": beir,
        "queries_tsv": lambda path, case: read_queries(path),
        "pipeline": lambda path, case: Pipeline.from_yaml(path, ws.valid_dataset()),
        "train": lambda path, case: load_config(TrainConfig, path),
        "llm_train": llm,
        "experiment": lambda path, case: load_experiment(path),
        "synth": lambda path, case: load_config(DUQGenConfig, path),
        "fewshot": lambda path, case: read_fewshot(path),
    }


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Hang()


def run_case(ws: Workspace, load: dict[str, Callable[[Path, Case], Any]], case: Case) -> Outcome:
    """Place and load one case under the time limit, and classify what happened."""
    path = ws.place(case)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    try:
        load[case.kind](path, case)
        return Outcome(case, "accepted")
    except _Hang:
        return Outcome(case, "hang", f"over {TIME_LIMIT_S} s")
    except RankkitError as exc:
        return Outcome(case, "rankkit", str(exc)[:300])
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return Outcome(case, "foreign", f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if case.kind in ("qrels_tsv", "corpus", "queries_jsonl"):
            ws.reset_beir()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, list[Outcome]]:
    ws = Workspace(tmp_path_factory.mktemp("fuzz"))
    load = loaders(ws)
    results = [run_case(ws, load, case) for case in generate(N_CASES, SEED)]
    report = os.environ.get("RANKKIT_FUZZ_REPORT")
    if report:
        counts = collections.Counter((o.case.kind, o.outcome) for o in results)
        summary = {"cases": len(results), "seed": SEED,
                   "by_outcome": dict(collections.Counter(o.outcome for o in results)),
                   "by_kind": {k: {o: n for (kk, o), n in counts.items() if kk == k} for k, _ in counts},
                   "by_mutation": dict(collections.Counter(m for o in results for m in o.case.mutations))}
        Path(report).write_text(json.dumps(summary, indent=2))
    return ws, results


def test_no_foreign_exception_and_no_hang(outcomes: tuple[Workspace, list[Outcome]]) -> None:
    _, results = outcomes
    bad = [o for o in results if o.outcome in ("foreign", "hang")]
    lines = [f"#{o.case.index} {o.case.kind}/{o.case.name} {'+'.join(o.case.mutations)}: {o.error}" for o in bad[:25]]
    assert not bad, f"{len(bad)} of {len(results)} cases failed:\n" + "\n".join(lines)


def test_every_kind_is_exercised_both_ways(outcomes: tuple[Workspace, list[Outcome]]) -> None:
    """The generator is not vacuous: every kind has rejected cases, and most kinds accepted ones."""
    _, results = outcomes
    assert len(results) >= 2000
    kinds = {o.case.kind for o in results}
    rejected = {o.case.kind for o in results if o.outcome == "rankkit"}
    assert rejected == kinds


def _cli_args(ws: Workspace, case: Case, path: Path, tmp: Path) -> list[str]:
    valid_qrels = tmp / "qrels.txt"
    valid_qrels.write_text(QRELS_TREC)
    valid_run = tmp / "run.trec"
    valid_run.write_text(RUN)
    return {
        "run": ["eval", str(path), "--qrels", str(valid_qrels)],
        "qrels_trec": ["eval", str(valid_run), "--qrels", str(path)],
        "train": ["train", "reranker", "--config", str(path), "--output", str(tmp / "model")],
        "experiment": ["experiment", str(path), "--output", str(tmp / "report.json")],
        "pipeline": ["retrieve", "--pipeline", str(path), "--dataset", str(ws.beir), "--split", "test",
                     "--output", str(tmp / "out.trec")],
    }[case.kind]


def test_a_sample_through_the_cli(outcomes: tuple[Workspace, list[Outcome]], tmp_path: Path) -> None:
    ws, results = outcomes
    sample: dict[str, Outcome] = {}
    for o in results:  # the first rejected case of each kind the CLI reads directly, and of each mutation
        if o.outcome == "rankkit" and o.case.kind in ("run", "qrels_trec", "train", "experiment", "pipeline") \
                and o.case.kind not in sample:
            sample[o.case.kind] = o
    assert len(sample) == 5
    env = dict(os.environ, RANKKIT_CACHE_DIR=str(tmp_path / "cache"))
    for kind, o in sample.items():
        path = ws.place(o.case)
        proc = subprocess.run([sys.executable, "-m", "rankkit.cli", *_cli_args(ws, o.case, path, tmp_path)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
        assert proc.returncode == 2, f"case #{o.case.index} ({kind}): exit {proc.returncode}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
