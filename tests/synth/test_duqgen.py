"""DUQGen end to end: bad input fails early and clearly; negatives mining; the folder a tiny run writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankkit.config import load_config
from rankkit.errors import ConfigError, DatasetError, FormatError
from rankkit.synth.config import DUQGenConfig
from rankkit.synth.duqgen import mine_negatives, run_duqgen
from rankkit.types import Run

WORDS = ("cell protein gene expression tumour patients randomised trial vitamin bone density statin diabetes "
         "antibiotic infant microbiota sleep coffee memory neuron cortex vaccine immune response").split()


def _corpus(folder: Path, n: int = 30, chars: int = 320) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for i in range(n):
            words, j = [], i
            while len(" ".join(words)) < chars:
                words.append(WORDS[(j * 7 + len(words) * (i % 5 + 1)) % len(WORDS)])
                j += 1
            fh.write(json.dumps({"_id": f"doc{i}", "title": f"Study {i}", "text": " ".join(words)}) + "\n")
    return folder


def _config(tmp_path: Path, corpus: Path, **over: object) -> DUQGenConfig:
    text = f"""
corpus: {corpus}
output: {tmp_path / 'out'}
embed: {{model: /nonexistent/encoder}}
clusters: {{k: 2, iterations: 5}}
sample: {{n: 4, min_chars: 300}}
generate: {{model: /nonexistent/llm, max_new_tokens: 4, batch_size: 2}}
negatives: {{depth: 10, bottom: 4, count: 2}}
"""
    path = tmp_path / "duqgen.yaml"
    path.write_text(text)
    cfg, _ = load_config(DUQGenConfig, path, {k.replace("__", "."): v for k, v in over.items()})
    return cfg


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c")
    with pytest.raises(ConfigError, match=r"clusters\.k \(5\) must be <= sample\.n \(4\)"):
        _config(tmp_path, corpus, clusters__k=5)
    with pytest.raises(ConfigError, match=r"negatives.*count \(5\) must be <= bottom \(4\)"):
        _config(tmp_path, corpus, negatives__count=5)
    with pytest.raises(ConfigError, match=r"sample\.mmr_lambda"):
        _config(tmp_path, corpus, sample__mmr_lambda=1.5)
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        _config(tmp_path, corpus, sample__temprature=1.0)
    with pytest.raises(ConfigError, match=r"generate\.fewshot: .*missing\.jsonl does not exist"):
        _config(tmp_path, corpus, generate__fewshot="missing.jsonl")
    # uniform sampling needs no clusters, so K > N is fine there
    assert _config(tmp_path, corpus, clusters__k=5, sample__mode="uniform").sample.mode == "uniform"


def test_bad_corpus_fails_before_any_model_is_loaded(tmp_path: Path) -> None:
    # the models named do not exist: reaching them would raise a different error
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "corpus.jsonl").write_text("")
    with pytest.raises(DatasetError, match="is empty"):
        run_duqgen(_config(tmp_path, empty), show_progress=False)
    corpus = _corpus(tmp_path / "c", n=10, chars=50)
    with pytest.raises(ConfigError, match="all 10 documents .* shorter than sample.min_chars = 300"):
        run_duqgen(_config(tmp_path, corpus), show_progress=False)
    with pytest.raises(ConfigError, match=r"sample\.n = 40 exceeds the 10 documents"):
        run_duqgen(_config(tmp_path, corpus, sample__min_chars=0, sample__n=40), show_progress=False)
    shots = tmp_path / "shots.jsonl"
    shots.write_text(json.dumps({"document": "d"}) + "\n")
    with pytest.raises(FormatError, match=r"shots\.jsonl:1: .*'query'"):
        run_duqgen(_config(tmp_path, corpus, sample__min_chars=0, generate__fewshot=str(shots)), show_progress=False)
    assert not (tmp_path / "out").exists()


def test_negatives_come_from_the_bottom_of_the_list_without_the_positive() -> None:
    run = Run({"q1": {f"d{i}": 100.0 - i for i in range(12)}, "q2": {"d0": 3.0, "d1": 2.0, "d2": 1.0}})
    neg = mine_negatives(run, {"q1": "d10", "q2": "d1", "q3": "d0"}, depth=10, bottom=4, count=2)
    # q1's list without d10 cut at 10: d0..d9; its bottom 4: d6..d9; the first 2 of them
    assert neg == {"q1": ["d6", "d7"], "q2": ["d0", "d2"], "q3": []}


def test_a_generator_with_nothing_usable_is_a_clear_error(tmp_path: Path, tiny_bert: Path, tiny_llm: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from rankkit.llm.generate import Generator

    cfg = _config(tmp_path, _corpus(tmp_path / "c"), embed__model=str(tiny_bert), generate__model=str(tiny_llm))
    monkeypatch.setattr(Generator, "generate", lambda self, prompts: ["" for _ in prompts])
    with pytest.raises(DatasetError, match=r"no usable query for any of the 4 documents \(dropped: \{'empty': 4\}\)"):
        run_duqgen(cfg, show_progress=False)
    assert not (tmp_path / "out").exists()


def test_unusable_generations_are_counted_skipped_and_reported(tmp_path: Path, tiny_bert: Path, tiny_llm: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from rankkit.llm.generate import Generator

    answers = iter(["Does coffee help memory?", "", "Köln study", "Does coffee help memory?"])
    monkeypatch.setattr(Generator, "generate", lambda self, prompts: [next(answers) for _ in prompts])
    cfg = _config(tmp_path, _corpus(tmp_path / "c"), embed__model=str(tiny_bert), generate__model=str(tiny_llm))
    result = run_duqgen(cfg, show_progress=False)
    assert result.queries == 1
    assert result.card["generation"]["reasons"] == {"ok": 1, "empty": 1, "non_ascii": 1, "duplicate": 1}
    assert not (tmp_path / "out.partial").exists()  # the generation log goes once the folder is complete
