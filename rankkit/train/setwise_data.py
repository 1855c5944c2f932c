"""Setwise prompts for Rank-R1 training (GRPO) and the Setwise-SFT baseline.

:func:`build_setwise_examples` turns a dataset split and its first-stage run into
prompts of ``set_size`` documents: one relevant document plus ``set_size - 1``
negatives sampled from the run's top ``negatives_depth`` (the same sampler as
cross-encoder groups, :func:`rankkit.train.groups.build_groups`), in shuffled
positions, with the ground-truth label recorded as the string ``"[i]"``. Each
example holds the rendered ``prompt`` (chat template plus the template's prefix),
the ``label``, the ``completion`` an SFT model is trained to write, the
``qid``/``docids`` it came from and the cut ``query``/``documents`` texts it shows.
Deterministic given ``seed``.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from rankkit.data.dataset import Dataset
from rankkit.rerank.setwise_prompt import SetwiseTemplate, truncate_texts
from rankkit.train.groups import GroupConfig, build_groups
from rankkit.types import Run

log = logging.getLogger(__name__)


def build_setwise_examples(dataset: Dataset, run: Run, template: SetwiseTemplate, tokenizer: Any, *,
                           set_size: int = 4, negatives_depth: int = 30, num_prompts: int | None = None,
                           passage_tokens: int | None = 64, query_tokens: int | None = 64,
                           seed: int = 0) -> list[dict[str, Any]]:
    """Setwise examples (``prompt``, ``completion``, ``label``, ``qid``, ``docids``) from ``dataset`` and ``run``.

    One example per (query, relevant document); queries without a relevant document
    are skipped. ``num_prompts`` keeps a seeded random sample of that many. Passages
    and queries are cut to ``passage_tokens``/``query_tokens`` tokens of ``tokenizer``.
    """
    if set_size < 2:
        raise ValueError(f"set_size must be >= 2 (one positive and at least one negative), got {set_size}")
    groups = build_groups(dataset, run, GroupConfig(group_size=set_size, negatives_depth=negatives_depth,
                                                    on_missing_positive="skip"), seed=seed)
    rng = random.Random(seed)
    if num_prompts is not None and num_prompts < len(groups):
        groups = sorted(rng.sample(groups, num_prompts), key=lambda g: g.query.qid)
    examples = []
    for g in groups:
        order = list(range(len(g.docs)))
        rng.shuffle(order)
        docs = [g.docs[i] for i in order]
        label = next(pos for pos, i in enumerate(order) if g.labels[i] > 0) + 1
        query, = truncate_texts([g.query.text], tokenizer, query_tokens)
        texts = truncate_texts([d.contents for d in docs], tokenizer, passage_tokens)
        examples.append({"prompt": template.prompt_text(tokenizer, query, texts),
                         "completion": _sft_completion(template, label),
                         "label": f"[{label}]", "qid": g.query.qid, "docids": [d.docid for d in docs],
                         "query": query, "documents": texts})
    log.info("%d setwise prompts of %d documents from %s", len(examples), set_size, dataset.name)
    return examples


def _sft_completion(template: SetwiseTemplate, label: int) -> str:
    """What follows the prompt in an SFT target: the answer, minus any prefix the prompt already ends with."""
    target = template.target(label)
    return target[len(template.prefix):] if target.startswith(template.prefix) else target
