"""Rendering chat messages into the prompt string a causal LM continues.

Prompts in rankkit are chat messages (``[{"role": ..., "content": ...}]``) rendered
with the tokenizer's own chat template and the generation prompt appended;
``prefix`` is text that starts the assistant's turn (``"<think>"`` makes a model
begin by reasoning), so generation continues after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_chat(tokenizer: Any, messages: Sequence[dict[str, str]], prefix: str = "") -> str:
    """The prompt string of ``messages``: the chat template with the generation prompt, then ``prefix``."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return text + prefix


def chat_messages(user: str, system: str = "") -> list[dict[str, str]]:
    """The chat messages of one request: a system message when ``system`` is not blank, then ``user``."""
    messages = [{"role": "system", "content": system}] if system.strip() else []
    return messages + [{"role": "user", "content": user}]
