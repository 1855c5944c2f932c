"""The setwise LLM rerank stage (Zhuang et al. setwise; Rank-R1 reasoning prompts).

``Setwise(dataset, model="smollm2", template="setwise-r1", num_child=3, k=10)``
takes the top ``depth`` candidates of each query from the incoming run and sorts
the top ``k`` with setwise heapsort (or bubblesort): each comparison shows the LLM
up to ``num_child + 1`` documents (passages cut to ``passage_tokens``) and asks
for the most relevant. Positions inside every comparison are shuffled with a
per-query seed (against position bias); comparisons of different queries are
generated together in batches of ``batch_size``. The output keeps the ``depth``
candidates: the sorted top ``k``, then the rest in first-stage order, then (``keep_tail``,
the default) the incoming run's documents below ``depth``, also in first-stage order. An answer
that cannot be parsed picks the shown document the first stage ranked highest.
LLM calls, prompt/generated tokens, generation time (ms) and parse outcomes are
in :attr:`Setwise.stats`.
Registered as the YAML stage ``setwise``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rankkit.config import NonNegativeFloat, PositiveInt, Seed
from rankkit.pipeline import PathStr, short_repr
from rankkit.rerank.base import Reranker, RerankerOptions, register_reranker
from rankkit.rerank.setwise_prompt import load_template, saved_template, truncate_texts
from rankkit.rerank.setwise_sort import SORTS, drive

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.rerank.setwise_llm import SetwiseLLM

log = logging.getLogger(__name__)


@dataclass
class SetwiseConfig(RerankerOptions):
    """Options of the setwise stage (Python, YAML and CLI share them).

    ``model`` is any HF causal LM id or path with a chat template (``smollm2`` is the
    offline SmolLM2-135M-Instruct); ``adapter`` a peft LoRA folder (e.g. from
    the ``train grpo`` command); ``template`` a built-in name or a ``.toml`` path
    (default: the template saved with the adapter, else ``setwise-r1``);
    ``method`` ``heapsort`` or ``bubblesort``; ``num_child`` + 1 documents per
    comparison; ``k`` results sorted out of ``depth`` candidates; ``max_new_tokens``
    caps each answer; ``temperature`` 0 is greedy (above 0, sampling seeded with
    ``seed``); ``parse`` is ``lenient`` or ``strict``; ``shuffle`` permutes positions
    in each comparison with ``seed``; ``precision`` (``auto``, ``fp32``, ``bf16``,
    ``fp16``) is the dtype the LLM is loaded in (``auto``: bf16 on CUDA, fp32 elsewhere);
    ``batch_size`` comparisons are generated together. The shared options are
    :class:`~rankkit.rerank.base.RerankerOptions`.
    """

    model: PathStr = "smollm2"
    adapter: PathStr | None = None
    template: PathStr | None = None
    method: Literal["heapsort", "bubblesort"] = "heapsort"
    num_child: PositiveInt = 3
    k: PositiveInt = 10
    depth: PositiveInt | None = 20
    passage_tokens: PositiveInt | None = 96
    query_tokens: PositiveInt | None = 64
    max_new_tokens: PositiveInt = 128
    temperature: NonNegativeFloat = 0.0
    parse: Literal["strict", "lenient"] = "lenient"
    shuffle: bool = True
    seed: Seed = 0
    batch_size: PositiveInt = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in SORTS:
            raise ValueError(f"method must be one of {', '.join(SORTS)}, got {short_repr(self.method)}")
        if self.parse not in ("strict", "lenient"):
            raise ValueError(f"parse must be strict or lenient, got {short_repr(self.parse)}")
        for key in ("num_child", "k", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {short_repr(getattr(self, key))}")


class Setwise(Reranker):
    """Setwise LLM reranker stage (see the module docstring).

    Takes :class:`SetwiseConfig` options as keywords, or ``config=``; a ready
    :class:`SetwiseLLM` can be passed as ``llm=`` to skip loading.
    """

    def __init__(self, dataset: Dataset | None = None, config: SetwiseConfig | None = None, *,
                 llm: SetwiseLLM | None = None, **options: Any) -> None:
        super().__init__(dataset, config, **options)
        c = self.config
        if c.adapter:
            from rankkit.hf_encoder import check_kind

            check_kind(Path(c.adapter), "rankkit_setwise.json")
        self.template = load_template(c.template or (c.adapter and saved_template(c.adapter)) or "setwise-r1")
        self._llm = llm
        self.stats: Counter[str] = Counter()

    kind = "setwise"
    config_class = SetwiseConfig
    config: SetwiseConfig

    def __repr__(self) -> str:
        c = self.config
        return f"Setwise(model={c.model!r}, adapter={c.adapter!r}, template={c.template!r}, c={c.num_child + 1})"

    @property
    def llm(self) -> SetwiseLLM:
        """The LLM comparator, loaded on first use."""
        if self._llm is None:
            from rankkit.llm import load_causal_lm
            from rankkit.models import loading_progress
            from rankkit.rerank.setwise_llm import SetwiseLLM

            c = self.config
            with loading_progress(c.show_progress):
                model, tok = load_causal_lm(c.model, c.adapter, c.device, c.precision)
            self._llm = SetwiseLLM(model, tok, self.template, c.max_new_tokens, c.temperature, c.parse, seed=c.seed)
        return self._llm

    def cache_spec(self) -> dict[str, Any] | None:
        from rankkit.models import model_identity, resolve_model

        c = self.config
        spec = {k: v for k, v in asdict(c).items() if k not in ("show_progress", "cache_dir", "name", "batch_size")}
        spec["model"] = model_identity(resolve_model(c.model))
        spec["adapter"] = model_identity(c.adapter) if c.adapter else None
        spec["template"] = asdict(self.template) | {"source": None}
        return spec

    def score(self, queries: dict[str, str], candidates: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        found = self.doc_texts(list(dict.fromkeys(d for ds in candidates.values() for d in ds)))
        return self.rerank(queries, {q: [found[d] for d in ds] for q, ds in candidates.items()}, candidates)

    def rerank(self, queries: dict[str, str], documents: dict[str, list[str]],
               docids: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        """Setwise-sort each query's candidates (``documents`` and ``docids`` in first-stage order).

        Returns ``{qid: {docid: score}}`` with scores descending along the new order.
        An empty candidate list raises ``ValueError`` naming the query.
        """
        from tqdm.auto import tqdm

        c = self.config
        for qid in queries:
            if not documents.get(qid):
                raise ValueError(f"{self.name}: query {qid!r} has an empty candidate list; nothing to rerank")
        llm = self.llm
        q_cut = dict(zip(queries, truncate_texts(list(queries.values()), llm.tokenizer, c.query_tokens)))
        d_cut = {qid: truncate_texts(documents[qid], llm.tokenizer, c.passage_tokens) for qid in queries}
        rngs = {qid: random.Random(f"{c.seed}:{qid}") for qid in queries}
        sorts = {qid: SORTS[c.method](len(documents[qid]), c.k, c.num_child) for qid in queries}

        def choose(batch: list[tuple[str, list[int]]]) -> list[int]:
            perms = []
            for qid, shown in batch:
                perm = list(range(len(shown)))
                if c.shuffle:
                    rngs[qid].shuffle(perm)
                perms.append(perm)
            picks = llm.choose([(q_cut[qid], [d_cut[qid][shown[j]] for j in perm])
                                for (qid, shown), perm in zip(batch, perms)])
            # An unreadable answer picks the shown document the first stage ranked highest (the
            # smallest index): deterministic, and with no readable answer at all the output is the
            # first-stage order.
            return [min(range(len(shown)), key=shown.__getitem__) if p is None else perm[p]
                    for (_, shown), perm, p in zip(batch, perms, picks)]

        before = Counter(llm.stats)
        with tqdm(desc=f"{self.name} comparisons", unit="call", disable=not c.show_progress) as bar:
            orders = drive(sorts, choose, c.batch_size, on_batch=bar.update)
        self.stats.update(Counter(llm.stats) - before)
        self.stats["queries"] += len(queries)
        log.info("%s: %s", self.name, dict(self.stats))
        return {qid: {docids[qid][i]: float(len(order) - r) for r, i in enumerate(order)}
                for qid, order in orders.items()}


register_reranker("setwise", Setwise)
