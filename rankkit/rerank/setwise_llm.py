"""The LLM side of setwise ranking: prompts for comparisons, generation, reading the chosen label.

:class:`SetwiseLLM` wraps a causal LM, its tokenizer and a :class:`SetwiseTemplate`.
:meth:`SetwiseLLM.choose` takes a batch of ``(query, documents)`` comparisons,
renders each as chat messages, generates the answers in one left-padded batch with
the generic :class:`rankkit.llm.Generator` (greedy by default, stopping at
``</answer>``) and parses them. An answer that cannot be read gives ``None`` (the
caller falls back deterministically) and is counted in :attr:`SetwiseLLM.stats`
(``parse_*``), along with the generator's LLM calls, prompt and generated tokens and
generation time.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rankkit.llm.generate import Generator
from rankkit.rerank.setwise_parse import ANSWER_END, parse_choice
from rankkit.rerank.setwise_prompt import SetwiseTemplate

log = logging.getLogger(__name__)


class SetwiseLLM:
    """A causal LM answering setwise comparisons (see the module docstring).

    ``max_new_tokens`` caps each answer; ``temperature`` 0 is greedy decoding (above
    0, sampling reproducible with ``seed``); ``parse`` is ``lenient`` or ``strict``
    (see :func:`parse_choice`).
    """

    def __init__(self, model: Any, tokenizer: Any, template: SetwiseTemplate, max_new_tokens: int = 128,
                 temperature: float = 0.0, parse: str = "lenient", seed: int | None = None) -> None:
        self.generator = Generator(model, tokenizer, max_new_tokens=max_new_tokens, stop=[ANSWER_END],
                                   temperature=temperature, seed=seed)
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.parse = parse
        # one Counter: the generator's llm_calls, prompt_tokens, generated_tokens, generation_ms, plus parse_*
        self.stats: Counter[str] = self.generator.stats

    def prompt_text(self, query: str, documents: Sequence[str]) -> str:
        """The chat-formatted prompt (generation prompt and template prefix appended) for one comparison."""
        return self.template.prompt_text(self.tokenizer, query, documents)

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Generate answers for chat-formatted ``prompts`` in one batch; counts calls and tokens."""
        return self.generator.generate(prompts)

    def choose(self, comparisons: Sequence[tuple[str, Sequence[str]]]) -> list[int | None]:
        """For each ``(query, documents)``, the 0-based position of the document the LLM picks (``None``: unreadable)."""
        for query, docs in comparisons:
            if not docs:
                raise ValueError(f"empty candidate list in a setwise comparison for query {query!r}")
        texts = self.generate([self.prompt_text(q, d) for q, d in comparisons])
        picks = []
        for (query, docs), text in zip(comparisons, texts):
            choice = parse_choice(self.template.prefix + text, len(docs), self.parse)
            self.stats[f"parse_{choice.how}"] += 1
            if choice.index is None:
                log.debug("unreadable answer for %r: %r", query, text[:200])
            picks.append(choice.index)
        return picks
