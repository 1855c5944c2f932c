"""The LLM side of setwise ranking: batched chat generation and reading the chosen label.

:class:`SetwiseLLM` wraps a causal LM, its tokenizer and a :class:`SetwiseTemplate`.
:meth:`SetwiseLLM.choose` takes a batch of ``(query, documents)`` comparisons,
renders each as chat messages, generates the answers in one left-padded batch
(greedy by default, stopping at ``</answer>``) and parses them. An answer that
cannot be read gives ``None`` (the caller falls back deterministically) and is
counted in :attr:`SetwiseLLM.stats`, along with LLM calls, prompt and generated tokens.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rankkit.rerank.setwise_parse import parse_choice
from rankkit.rerank.setwise_prompt import SetwiseTemplate

log = logging.getLogger(__name__)


def generated_lengths(new_tokens: Any, eos_ids: set[int]) -> list[int]:
    """Per row of ``new_tokens`` (batch x steps), the tokens generated up to and including the first EOS."""
    out = []
    for row in new_tokens.tolist():
        n = len(row)
        for i, t in enumerate(row):
            if t in eos_ids:
                n = i + 1
                break
        out.append(n)
    return out


class SetwiseLLM:
    """A causal LM answering setwise comparisons (see the module docstring).

    ``max_new_tokens`` caps each answer; ``temperature`` 0 is greedy decoding;
    ``parse`` is ``lenient`` or ``strict`` (see :func:`parse_choice`).
    """

    def __init__(self, model: Any, tokenizer: Any, template: SetwiseTemplate, max_new_tokens: int = 128,
                 temperature: float = 0.0, parse: str = "lenient") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.parse = parse
        self.stats: Counter[str] = Counter()

    def prompt_text(self, query: str, documents: Sequence[str]) -> str:
        """The chat-formatted prompt (generation prompt appended) for one comparison."""
        return self.template.prompt_text(self.tokenizer, query, documents)

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Generate answers for chat-formatted ``prompts`` in one batch; counts calls and tokens."""
        import torch

        tok = self.tokenizer
        enc = tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "stop_strings": ["</answer>"],
                                  "tokenizer": tok, "pad_token_id": tok.pad_token_id}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
        self.stats["llm_calls"] += len(prompts)
        self.stats["prompt_tokens"] += int(enc["attention_mask"].sum())
        self.stats["generated_tokens"] += sum(generated_lengths(new, eos_ids))
        return tok.batch_decode(new, skip_special_tokens=True)

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
