"""Rank-R1's reward (truth table) and robust answer parsing (malformed output never crashes)."""

from __future__ import annotations

import random
import string

import pytest

from rankkit.rerank.setwise_parse import format_ok, parse_choice, partial_format, rank_r1_reward


@pytest.mark.parametrize("completion, label, reward", [
    ("[3]", "[3]", 0.0),                                                    # no tags
    ("the answer is 3", "[3]", 0.0),                                        # no tags
    ("<think>doc 3 talks about it</think><answer>[3]</answer>", "[3]", 1.0),  # right label
    ("<think>x</think>\n\n  <answer>[3]</answer>", "[3]", 1.0),             # whitespace between blocks
    ("<think>x</think><answer>  [3]\n</answer>", "[3]", 1.0),               # whitespace inside the answer
    ("<think>x</think><answer>[3]</answer>", " [3] ", 1.0),                 # whitespace around the label
    ("<answer>[3]</answer>", "[3]", 0.0),                                   # right label, no think block
    ("<think>x<answer>[3]</answer>", "[3]", 0.0),                           # think block never closed
    ("<think>x</think><answer>[2]</answer>", "[3]", 0.0),                   # wrong label
    ("<think>x</think><answer>3</answer>", "[3]", 0.0),                     # brackets missing
    ("<think>x</think><answer>[3] because</answer>", "[3]", 0.0),           # extra text: exact match only
    ("<think>x</think><answer>[ 3 ]</answer>", "[3]", 0.0),                 # spaces inside brackets
    ("<think>a\nb\nc</think>\n<answer>[3]</answer> trailing text", "[3]", 1.0),  # multi-line reasoning
])
def test_reward_truth_table(completion: str, label: str, reward: float) -> None:
    assert rank_r1_reward(completion, label) == reward


def test_format_and_partial_format() -> None:
    assert format_ok("<think>a</think> <answer>[1]</answer>")
    assert not format_ok("<answer>[1]</answer>")
    assert partial_format("<think>a</think> <answer>[1]</answer>") == 1.0
    assert partial_format(" <think>a</think> no answer") == 0.5
    assert partial_format("text <think>a</think> <answer>[1]</answer>") == 0.0
    assert partial_format("<answer>[1]</answer>") == 0.0


@pytest.mark.parametrize("text, n, mode, index, how", [
    ("<think>r</think><answer>[2]</answer>", 4, "strict", 1, "strict"),
    ("<think>r</think><answer>[2]</answer>", 4, "lenient", 1, "strict"),
    ("<answer>[4]</answer>", 4, "lenient", 3, "answer"),
    ("<answer>[4]</answer>", 4, "strict", None, "failed"),
    ("Document [3] is the most relevant.", 4, "lenient", 2, "label"),
    ("[3] or maybe [1]", 4, "lenient", None, "failed"),                     # ambiguous
    ("<think>r</think><answer>[9]</answer>", 4, "lenient", None, "failed"),  # out of range
    ("<think>r</think><answer>[0]</answer>", 4, "lenient", None, "failed"),
    ("", 4, "lenient", None, "failed"),
    ("<answer>[2]", 4, "lenient", 1, "label"),                              # unclosed tag, lone label
])
def test_parse_choice(text: str, n: int, mode: str, index: int | None, how: str) -> None:
    choice = parse_choice(text, n, mode)
    assert (choice.index, choice.how) == (index, how)


def test_malformed_outputs_never_crash() -> None:
    rng = random.Random(0)
    alphabet = string.printable + "<>[]/ thinkanswer\u00e9\u4e2d\U0001f600"
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "[", "]", "[1]", "[99999999999999999999]", "\n"]
    for _ in range(3000):
        parts = [rng.choice(pieces) if rng.random() < 0.4 else
                 "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(0, 12))]
        text = "".join(parts)
        for mode in ("strict", "lenient"):
            choice = parse_choice(text, 4, mode)
            assert choice.index is None or 0 <= choice.index < 4
            assert (choice.index is None) == (choice.how == "failed")
        assert rank_r1_reward(text, "[1]") in (0.0, 1.0)
    assert parse_choice(None, 4).how == "failed"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        parse_choice("x", 4, "fuzzy")
