"""The generic batched generator: stop strings, greedy determinism, seeded sampling, stats (tiny random LLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rankkit.errors import ConfigError
from rankkit.llm import GenerationSettings, Generator, chat_messages, generated_lengths, load_causal_lm, render_chat
from rankkit.llm.generate import cut_at_stop


@pytest.fixture(scope="module")
def lm(tiny_llm: Path) -> tuple[Any, Any]:
    return load_causal_lm(str(tiny_llm), device="cpu")


@pytest.fixture(scope="module")
def prompts(lm: tuple[Any, Any]) -> list[str]:
    _, tok = lm
    users = ["which document is relevant?", "the cell protein gene expression of tumour patients in a trial",
             "[1] [2] [3]"]
    return [render_chat(tok, chat_messages(u, "answer briefly")) for u in users]


def test_cut_at_stop_and_generated_lengths() -> None:
    import torch

    assert cut_at_stop("a</b> x </answer> tail", ["</answer>", "x"]) == "a</b> x"
    assert cut_at_stop("think </answer> more </answer>", ["</answer>"]) == "think </answer>"
    assert cut_at_stop("think </answer> more", ["</answer>"], include_stop=False) == "think "
    assert cut_at_stop("no stop here", ["</answer>"]) == "no stop here"
    rows = torch.tensor([[5, 6, 2, 7], [5, 6, 7, 8], [5, 0, 0, 0], [0, 0, 0, 0]])
    assert generated_lengths(rows, {2}) == [3, 4, 4, 4]
    assert generated_lengths(rows, {2}, pad_id=0) == [3, 4, 1, 0]  # trailing pads fill rows stopped early
    assert generated_lengths(rows, {0}, pad_id=0) == [4, 4, 2, 1]  # pad == EOS: the first counts


def test_greedy_is_deterministic_and_batch_independent(lm: tuple[Any, Any], prompts: list[str]) -> None:
    model, tok = lm
    gen = Generator(model, tok, max_new_tokens=8)
    first = gen.generate(prompts)
    assert len(first) == 3 and all(isinstance(t, str) for t in first)
    assert gen.generate(prompts) == first
    assert Generator(model, tok, max_new_tokens=8, batch_size=1).generate(prompts) == first
    assert gen.generate([]) == []


def test_stop_strings_are_honoured(lm: tuple[Any, Any], prompts: list[str]) -> None:
    model, tok = lm
    free = Generator(model, tok, max_new_tokens=16)
    full = free.generate(prompts[:1])[0]
    visible = [i for i, ch in enumerate(full) if not ch.isspace()]
    assert len(visible) >= 6, f"the tiny model should say something: {full!r}"
    stop = full[visible[2]:visible[4] + 1]  # a string the greedy continuation reaches after a few tokens
    stopped = Generator(model, tok, max_new_tokens=16, stop=[stop, "never appears"])
    text = stopped.generate(prompts[:1])[0]
    assert text == cut_at_stop(full, [stop]) and text.endswith(stop) and text.count(stop) == 1
    assert stopped.stats["generated_tokens"] < free.stats["generated_tokens"]
    dropped = Generator(model, tok, max_new_tokens=16, stop=stop, include_stop=False).generate(prompts[:1])[0]
    assert dropped == text[:-len(stop)]


def test_stats_count_calls_tokens_and_time(lm: tuple[Any, Any], prompts: list[str]) -> None:
    model, tok = lm
    gen = Generator(model, tok, max_new_tokens=5, batch_size=2)
    assert gen.tokens_per_second == 0.0
    gen.generate(prompts)
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    s = gen.stats
    assert s["llm_calls"] == 3 and s["prompt_tokens"] == sum(lengths)  # padding is not counted
    assert 0 < s["generated_tokens"] <= 5 * 3 and s["generation_ms"] > 0
    assert gen.tokens_per_second == pytest.approx(1000 * s["generated_tokens"] / s["generation_ms"])
    gen.generate(prompts[:1])
    assert gen.stats["llm_calls"] == 4
    assert tok.padding_side == "left"


def test_seeded_sampling_is_reproducible_and_leaves_global_rng_alone(lm: tuple[Any, Any],
                                                                     prompts: list[str]) -> None:
    import torch

    model, tok = lm

    def sample(seed: int) -> list[list[str]]:
        gen = Generator(model, tok, max_new_tokens=10, temperature=1.0, top_k=0, top_p=1.0, seed=seed)
        return [gen.generate(prompts), gen.generate(prompts)]

    state = torch.random.get_rng_state()
    a, b, other = sample(7), sample(7), sample(8)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == b
    assert a[0] != a[1] and a != other  # each call draws fresh randomness; another seed samples otherwise
    greedy = Generator(model, tok, max_new_tokens=10).generate(prompts)
    assert a[0] != greedy


@pytest.mark.parametrize(("key", "value", "message"), [
    ("max_new_tokens", 0, "max_new_tokens must be >= 1"), ("temperature", -0.1, "temperature must be >= 0"),
    ("top_p", 0.0, r"top_p must be in \(0, 1\]"), ("top_k", -1, "top_k must be >= 0"),
    ("batch_size", 0, "batch_size must be >= 1"), ("stop", ["</a>", ""], "stop must be a list of non-empty strings"),
])
def test_bad_settings_name_the_key(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Generator(None, None, **{key: value})


def test_settings_object_or_keywords() -> None:
    settings = GenerationSettings(max_new_tokens=4, stop="</q>")
    assert settings.stop == ("</q>",) and Generator(None, None, settings).settings is settings
    assert Generator(None, None, stop=["a", "b"]).settings.stop == ("a", "b")
    with pytest.raises(ConfigError, match="either settings or keyword options"):
        Generator(None, None, settings, top_k=3)
