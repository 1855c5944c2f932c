"""The setwise stage: position shuffling maps back correctly, fallbacks, counters, real loading paths."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rankkit.errors import ConfigError
from rankkit.rerank.setwise import Setwise
from rankkit.rerank.setwise_llm import SetwiseLLM
from rankkit.rerank.setwise_prompt import load_template


class _Tok:
    """Whitespace 'tokenizer' enough for truncation."""

    def __call__(self, texts, add_special_tokens=False, truncation=True, max_length=None):
        return {"input_ids": [t.split()[:max_length] for t in texts]}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(ids)


class OracleLLM:
    """Stands in for an LLM: picks the shown document with the largest number in its text."""

    def __init__(self, unreadable: bool = False) -> None:
        self.tokenizer = _Tok()
        self.stats: Counter[str] = Counter()
        self.unreadable = unreadable
        self.seen: list[list[str]] = []

    def choose(self, comparisons):
        self.stats["llm_calls"] += len(comparisons)
        self.seen.extend(docs for _, docs in comparisons)
        if self.unreadable:
            self.stats["parse_failed"] += len(comparisons)
            return [None] * len(comparisons)
        return [max(range(len(docs)), key=lambda j: int(docs[j].split()[1])) for _, docs in comparisons]


def _candidates(n: int, seed: int) -> tuple[list[str], list[str]]:
    import random

    values = list(range(n))
    random.Random(seed).shuffle(values)
    return [f"d{v}" for v in values], [f"doc {v} text" for v in values]


@pytest.mark.parametrize("method", ["heapsort", "bubblesort"])
def test_shuffled_positions_map_back_to_the_true_top_k(method: str) -> None:
    llm = OracleLLM()
    stage = Setwise(llm=llm, method=method, num_child=3, k=5, depth=20, show_progress=False)
    docids, texts = {}, {}
    for i in range(6):
        docids[f"q{i}"], texts[f"q{i}"] = _candidates(20, i)
    out = stage.rerank({q: "query" for q in docids}, texts, docids)
    for q, scores in out.items():
        ranked = sorted(scores, key=lambda d: -scores[d])
        assert ranked[:5] == ["d19", "d18", "d17", "d16", "d15"]
        assert sorted(ranked) == sorted(docids[q])
    assert stage.stats["llm_calls"] == llm.stats["llm_calls"] > 0 and stage.stats["queries"] == 6
    # positions really are shuffled: the best of a comparison is not always shown first
    firsts = Counter(max(range(len(s)), key=lambda j: int(s[j].split()[1])) for s in llm.seen)
    assert len(firsts) > 1


def test_unreadable_answers_fall_back_to_first_stage_order() -> None:
    llm = OracleLLM(unreadable=True)
    stage = Setwise(llm=llm, num_child=3, k=5, depth=10, show_progress=False)
    docids, texts = _candidates(10, 0)
    out = stage.rerank({"q": "query"}, {"q": texts}, {"q": docids})["q"]
    assert sorted(out, key=lambda d: -out[d]) == docids
    assert stage.stats["parse_failed"] == stage.stats["llm_calls"] > 0


def test_same_seed_same_run_other_seed_other_prompts() -> None:
    docids, texts = _candidates(12, 3)
    seen = []
    for seed in (0, 0, 1):
        llm = OracleLLM()
        Setwise(llm=llm, k=3, depth=12, seed=seed, show_progress=False).rerank({"q": "x"}, {"q": texts},
                                                                               {"q": docids})
        seen.append(llm.seen)
    assert seen[0] == seen[1] and seen[0] != seen[2]


def test_empty_candidate_list_and_bad_config() -> None:
    stage = Setwise(llm=OracleLLM(), show_progress=False)
    with pytest.raises(ValueError, match="query 'q7' has an empty candidate list"):
        stage.rerank({"q7": "x"}, {"q7": []}, {"q7": []})
    with pytest.raises(ConfigError, match="method"):
        Setwise(method="quicksort")
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16, got 'float16'"):
        Setwise(precision="float16")
    with pytest.raises(ConfigError, match="unknown key 'dtype'"):
        Setwise(dtype="bf16")
    with pytest.raises(ConfigError, match="after a retriever"):
        stage([("q", "x")])


def test_tiny_llm_end_to_end_counts_calls_and_tokens(tiny_llm: Path) -> None:
    from rankkit.llm import load_causal_lm

    model, tok = load_causal_lm(str(tiny_llm), device="cpu")
    llm = SetwiseLLM(model, tok, load_template("setwise-r1"), max_new_tokens=6)
    stage = Setwise(llm=llm, num_child=2, k=2, depth=5, batch_size=3, show_progress=False)
    docids, texts = _candidates(5, 1)
    out = stage.rerank({"a": "cell protein", "b": "gene"}, {"a": texts, "b": texts[::-1]},
                       {"a": docids, "b": docids[::-1]})
    assert set(out) == {"a", "b"} and all(len(v) == 5 for v in out.values())
    s = stage.stats
    assert s["llm_calls"] > 0 and 0 < s["generated_tokens"] <= 6 * s["llm_calls"]
    assert s["prompt_tokens"] > 0 and s["generation_ms"] >= 0
    assert sum(v for k, v in s.items() if k.startswith("parse_")) == s["llm_calls"]
    assert llm.generator.settings.stop == ("</answer>",) and llm.stats is llm.generator.stats


def test_model_without_chat_template_is_refused(tmp_path: Path) -> None:
    from rankkit_test_helpers import build_tiny_llm

    from rankkit.llm import load_causal_lm

    path = build_tiny_llm(tmp_path / "no-chat", chat_template=None)
    with pytest.raises(ConfigError, match="has no chat template"):
        load_causal_lm(str(path))
