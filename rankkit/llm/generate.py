"""Batched chat generation with a causal LM: stop strings, greedy or seeded sampling, throughput stats.

:class:`Generator` wraps a model and its tokenizer (from :func:`rankkit.llm.load_causal_lm`)
and turns prompt strings (already chat-formatted, see :mod:`rankkit.llm.chat`) into
the generated continuations, in left-padded batches. A row stops at EOS, at
``max_new_tokens`` or at the first of its ``stop`` strings; the returned text ends
with that stop string (``include_stop=False`` drops it) and nothing after it.
``temperature`` 0 is greedy decoding; above 0 it samples with ``top_p``/``top_k``
(``top_k`` 0: off), reproducibly when ``seed`` is given (each batch draws its seed
from a stream seeded once, inside a forked torch RNG, so global random state is
left alone). :attr:`Generator.stats` counts ``llm_calls`` (prompts), ``prompt_tokens``,
``generated_tokens`` and ``generation_ms``; :attr:`Generator.tokens_per_second` is
the generation throughput. The knobs are one :class:`GenerationSettings` dataclass
(so a method's YAML config can embed it). Nothing in here is specific to one method.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rankkit.errors import ConfigError

log = logging.getLogger(__name__)


def generated_lengths(new_tokens: Any, eos_ids: set[int], pad_id: int | None = None) -> list[int]:
    """Per row of ``new_tokens`` (batch x steps), how many tokens the model generated.

    A row ends at its first EOS (counted); when the pad token is not an EOS, the pad
    tokens that fill a row finished early (by a stop string) are not counted either.
    """
    out = []
    for row in new_tokens.tolist():
        n = len(row)
        if pad_id is not None and pad_id not in eos_ids:
            while n and row[n - 1] == pad_id:
                n -= 1
        for i, t in enumerate(row[:n]):
            if t in eos_ids:
                n = i + 1
                break
        out.append(n)
    return out


def cut_at_stop(text: str, stop: Sequence[str], include_stop: bool = True) -> str:
    """``text`` up to the stop string that ends first (kept when ``include_stop``); unchanged when none occurs."""
    best: tuple[int, int] | None = None  # (end, start) of the earliest-ending stop string
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best is None or i + len(s) < best[0]):
            best = (i + len(s), i)
    if best is None:
        return text
    return text[:best[0]] if include_stop else text[:best[1]]


@dataclass(frozen=True)
class GenerationSettings:
    """How :class:`Generator` decodes (see the module docstring); ``stop`` is kept as a tuple.

    ``batch_size`` ``None`` generates every prompt of a :meth:`Generator.generate` call in one batch.
    """

    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    batch_size: int | None = None
    include_stop: bool = True

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", stop)
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0: off), got {self.top_k}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"stop must be a list of non-empty strings, got {list(stop)!r}")


class Generator:
    """Batched generation of continuations of chat-formatted prompts (see the module docstring).

    Give the :class:`GenerationSettings` as ``settings=`` or as keywords
    (``Generator(model, tok, max_new_tokens=64, stop=["</answer>"])``).
    """

    def __init__(self, model: Any, tokenizer: Any, settings: GenerationSettings | None = None,
                 **options: Any) -> None:
        if settings is not None and options:
            raise ConfigError("give Generator either settings or keyword options, not both")
        self.settings = settings or GenerationSettings(**options)
        self.model = model
        self.tokenizer = tokenizer
        self.stats: Counter[str] = Counter()
        self._seeds = random.Random(self.settings.seed) if self.settings.seed is not None else None

    @property
    def sampling(self) -> bool:
        """Whether decoding samples (``temperature > 0``) rather than taking the most likely token."""
        return self.settings.temperature > 0

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of generation so far (0.0 before any)."""
        ms = self.stats["generation_ms"]
        return 1000.0 * self.stats["generated_tokens"] / ms if ms else 0.0

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """The generated text for each prompt (in order), in batches of ``batch_size``; counts calls and tokens."""
        prompts = list(prompts)
        size = self.settings.batch_size or max(len(prompts), 1)
        texts: list[str] = []
        for i in range(0, len(prompts), size):
            texts.extend(self._generate_batch(prompts[i:i + size]))
        return texts

    def _generation_kwargs(self) -> dict[str, Any]:
        s, tok = self.settings, self.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "pad_token_id": tok.pad_token_id}
        if s.stop:
            kwargs.update(stop_strings=list(s.stop), tokenizer=tok)
        if self.sampling:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
        else:  # None overrides sampling defaults a model's generation_config may carry
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        return ids | ({self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set())

    @contextmanager
    def _rng(self) -> Iterator[None]:
        """Seed the sampling of one batch from the generator's seed stream, without touching global RNG state."""
        if self._seeds is None or not self.sampling:
            yield
            return
        import torch

        seed = self._seeds.randrange(2**63)
        dev = self.model.device
        cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(cuda[0]):
                    torch.cuda.manual_seed(seed)
            yield

    def _generate_batch(self, prompts: list[str]) -> list[str]:
        import torch

        tok = self.tokenizer
        side, tok.padding_side = tok.padding_side, "left"  # generation continues the right end of every row
        try:
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        finally:
            tok.padding_side = side
        t0 = time.perf_counter()
        with torch.inference_mode(), self._rng():
            out = self.model.generate(**enc, **self._generation_kwargs())
        ms = round(1000 * (time.perf_counter() - t0))
        new = out[:, enc["input_ids"].shape[1]:]
        generated = sum(generated_lengths(new, self._eos_ids(), tok.pad_token_id))
        self.stats["llm_calls"] += len(prompts)
        self.stats["prompt_tokens"] += int(enc["attention_mask"].sum())
        self.stats["generated_tokens"] += generated
        self.stats["generation_ms"] += ms
        log.debug("generated %d tokens for %d prompts in %d ms", generated, len(prompts), ms)
        texts = tok.batch_decode(new, skip_special_tokens=True)
        return [cut_at_stop(t, self.settings.stop, self.settings.include_stop) for t in texts]
