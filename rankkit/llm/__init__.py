"""Causal language models for rankkit's LLM methods (setwise reranking, GRPO/SFT data, DUQGen).

- :mod:`rankkit.llm.loading`: :func:`load_causal_lm` / :func:`load_tokenizer` by HF id,
  path or alias (through :func:`rankkit.models.resolve_model`, which converts the offline
  SmolLM2 GGUF once), LoRA adapters, left padding, chat template required;
- :mod:`rankkit.llm.chat`: chat messages rendered into prompt strings;
- :mod:`rankkit.llm.generate`: :class:`Generator`, batched generation with stop strings,
  greedy or seeded sampling and throughput stats.

Importing this package is light: torch and transformers load on first use.
"""

from __future__ import annotations

from rankkit.llm.chat import chat_messages, render_chat
from rankkit.llm.generate import GenerationSettings, Generator, generated_lengths
from rankkit.llm.loading import SMOLLM2_ID, load_causal_lm, load_tokenizer

__all__ = ["SMOLLM2_ID", "GenerationSettings", "Generator", "chat_messages", "generated_lengths", "load_causal_lm", "load_tokenizer",
           "render_chat"]
