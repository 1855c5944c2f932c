"""Reading a setwise answer out of generated text, and Rank-R1's reward.

:func:`rank_r1_reward` is the paper's binary reward (METHODS.md section 2a): the
completion must match ``<think>.*?</think>\\s*<answer>(.*?)</answer>`` (DOTALL),
and then scores 1 only when the stripped answer equals the ground-truth label
string (``"[3]"``). :func:`parse_choice` is the ranker's reader: it tries the same
strict pattern first, then (``lenient``) an answer block without reasoning, then a
lone label anywhere; whatever it cannot read gives ``None`` and the caller falls
back deterministically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER_END = "</answer>"  # the stop string of setwise generation: the answer is complete there
STRICT = re.compile(r"<think>.*?</think>\s*<answer>(.*?)</answer>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_LABEL = re.compile(r"^\s*\[\s*(\d+)\s*\]\s*$")
_ANY_LABEL = re.compile(r"\[\s*(\d+)\s*\]")


def format_ok(completion: str) -> bool:
    """Whether ``completion`` follows the think-then-answer format (the reward's precondition)."""
    return STRICT.search(completion) is not None


def rank_r1_reward(completion: str, label: str) -> float:
    """Rank-R1's binary reward: 1.0 when the format matches and the answer is exactly ``label`` (after strip).

    No tags, an answer without a preceding ``<think>`` block, or any other answer text
    (``[3] because…``, ``3``) scores 0.0.
    """
    m = STRICT.search(completion)
    return 1.0 if m is not None and m.group(1).strip() == label.strip() else 0.0


@dataclass(frozen=True)
class Choice:
    """A parsed answer: ``index`` (0-based, or ``None`` when unreadable) and how it was read.

    ``how`` is ``strict`` (think + answer format), ``answer`` (answer tags without the
    reasoning block), ``label`` (a lone ``[i]`` elsewhere) or ``failed``.
    """

    index: int | None
    how: str


def _label_index(text: str, n: int) -> int | None:
    m = _LABEL.match(text)
    if m is None:
        return None
    i = int(m.group(1))
    return i - 1 if 1 <= i <= n else None


def parse_choice(text: str, n: int, mode: str = "lenient") -> Choice:
    """Read the chosen label (1..``n``) from generated ``text``; never raises on model output.

    ``mode="strict"`` accepts only the think-then-answer format with an answer that is
    exactly one in-range label; ``mode="lenient"`` also accepts ``<answer>[i]</answer>``
    alone and, failing that, the first in-range ``[i]`` when the text has exactly one
    distinct label. Out-of-range or ambiguous answers give ``Choice(None, "failed")``.
    """
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be strict or lenient, got {mode!r}")
    text = text if isinstance(text, str) else ""
    m = STRICT.search(text)
    if m is not None:
        i = _label_index(m.group(1), n)
        if i is not None:
            return Choice(i, "strict")
    if mode == "strict":
        return Choice(None, "failed")
    for m in _ANSWER.finditer(text):
        i = _label_index(m.group(1), n)
        if i is not None:
            return Choice(i, "answer")
    labels = {int(x) for x in _ANY_LABEL.findall(text)}
    labels = {x for x in labels if 1 <= x <= n}
    if len(labels) == 1:
        return Choice(labels.pop() - 1, "label")
    return Choice(None, "failed")


_THINK_START = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def partial_format(completion: str) -> float:
    """Opt-in format shaping: 0.5 for a closed ``<think>`` block at the start, 1.0 if an answer block follows."""
    m = _THINK_START.match(completion)
    if m is None:
        return 0.0
    return 1.0 if _ANSWER.search(completion, m.end()) else 0.5
