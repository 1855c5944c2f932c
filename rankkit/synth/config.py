"""The one config of DUQGen synthesis (``rankkit synth duqgen --config pipelines/duqgen_*.yaml``).

YAML keys map 1:1 onto these dataclasses (read with :func:`rankkit.config.load_config`,
validated before anything is loaded). Defaults are the CPU-scale plan of METHODS.md
section 4e (K = 50, N = 200, a small instruction model); the paper's values (K = 1000,
N = 1000, Contriever, Llama-2-7B-chat, 512 words) are in ``pipelines/duqgen_scifact.yaml``'s comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from rankkit.config import (Device, InferencePrecision, NonEmptyStr, NonNegativeInt, PositiveFloat, PositiveInt,
                            Precision, Probability, Seed, check_file, validate_fields)
from rankkit.models import MINILM_ID, SMOLLM2_ID

__all__ = ["ClusterSettings", "DUQGenConfig", "EmbedSettings", "NegativeSettings", "QueryGenSettings",
           "SampleSettings"]


@dataclass(slots=True)
class EmbedSettings:
    """How documents are embedded (any rankkit dense encoder; vectors cached like the dense index)."""

    model: NonEmptyStr = MINILM_ID
    max_length: PositiveInt = 256
    batch_size: PositiveInt = 64
    precision: InferencePrecision = "auto"
    device: Device = "auto"

    def __post_init__(self) -> None:
        validate_fields(self, "embed")


@dataclass(slots=True)
class ClusterSettings:
    """k-means: ``k`` clusters (K), ``iterations``, ``seed``; ``elbow`` a grid of K whose knee is reported."""

    k: PositiveInt = 50
    iterations: PositiveInt = 100
    seed: Seed = 420
    elbow: list[PositiveInt] | None = None

    def __post_init__(self) -> None:
        validate_fields(self, "clusters")


@dataclass(slots=True)
class SampleSettings:
    """Which documents get a query: ``n`` (N) of them, chosen by ``mode``.

    ``duqgen``: cluster-proportional softmax sampling (``temperature``, pooled over
    ``seeds``) then MMR with ``mmr_lambda`` (1.0, the paper's default, is pure similarity:
    no diversity). ``uniform``: N documents uniformly at random (the ablation; ``seed``).
    Documents whose text (title + text) has fewer than ``min_chars`` characters are never sampled.
    """

    mode: Literal["duqgen", "uniform"] = "duqgen"
    n: PositiveInt = 200
    min_chars: NonNegativeInt = 300
    temperature: PositiveFloat = 1.0
    seeds: Annotated[list[Seed], Field(min_length=1)] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    mmr_lambda: Probability = 1.0
    seed: Seed = 42

    def __post_init__(self) -> None:
        validate_fields(self, "sample")


@dataclass(slots=True)
class QueryGenSettings:
    """Query generation: any chat causal LM (HF id, path or ``smollm2``), prompt, few-shot file, decoding.

    ``template`` is a built-in name (``duqgen``) or a ``.toml`` path; ``fewshot`` a JSONL
    file of ``{"document", "query"}`` examples (null: none); documents are cut to their
    first ``doc_words`` words. ``temperature`` 0 is greedy (the paper). A query that
    appears verbatim in its document with at least ``copy_min_words`` words, or has more
    than ``max_words`` words (null: no limit), is dropped.
    """

    model: NonEmptyStr = SMOLLM2_ID
    template: NonEmptyStr = "duqgen"
    fewshot: NonEmptyStr | None = None
    doc_words: PositiveInt = 512
    max_new_tokens: PositiveInt = 64
    batch_size: PositiveInt = 8
    temperature: Annotated[float, Field(ge=0)] = 0.0
    copy_min_words: PositiveInt = 4
    max_words: PositiveInt | None = 32
    device: Device = "auto"
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        validate_fields(self, "generate")


@dataclass(slots=True)
class NegativeSettings:
    """Negatives per query: from the bottom ``bottom`` ranks of a ``source`` top ``depth``, the first ``count``.

    ``source`` is ``dense`` (the embedding model of ``embed``; the paper) or ``bm25``. The
    query's own document is never a negative.
    """

    source: Literal["dense", "bm25"] = "dense"
    depth: PositiveInt = 100
    bottom: PositiveInt = 8
    count: PositiveInt = 4

    def __post_init__(self) -> None:
        validate_fields(self, "negatives")
        if self.count > self.bottom:
            raise ValueError(f"count ({self.count}) must be <= bottom ({self.bottom})")
        if self.bottom > self.depth:
            raise ValueError(f"bottom ({self.bottom}) must be <= depth ({self.depth})")


@dataclass(slots=True)
class DUQGenConfig:
    """DUQGen synthesis (Chandradevan et al., NAACL 2024): corpus -> BEIR folder of synthetic training queries.

    ``corpus`` is an ir_datasets id or a BEIR folder (only its documents are read; its
    queries and qrels never are); ``output`` the BEIR folder written. ``seed`` seeds generation sampling.
    """

    corpus: NonEmptyStr = "beir/scifact"
    output: NonEmptyStr = "../models/duqgen"
    embed: EmbedSettings = field(default_factory=EmbedSettings)
    clusters: ClusterSettings = field(default_factory=ClusterSettings)
    sample: SampleSettings = field(default_factory=SampleSettings)
    generate: QueryGenSettings = field(default_factory=QueryGenSettings)
    negatives: NegativeSettings = field(default_factory=NegativeSettings)
    seed: Seed = 42

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.sample.mode == "duqgen" and self.clusters.k > self.sample.n:
            raise ValueError(f"clusters.k ({self.clusters.k}) must be <= sample.n ({self.sample.n}): "
                             "every cluster gets at least one document")

    def check_paths(self, base: Path) -> None:
        """The few-shot and template files named must exist (relative paths resolve against ``base``)."""
        g = self.generate
        check_file("generate.fewshot", g.fewshot, base)
        if g.template.endswith(".toml"):  # else a built-in template's name
            check_file("generate.template", g.template, base)

    def resolve(self, base: Path) -> DUQGenConfig:
        """This config with relative paths (output, few-shot, template, a corpus folder) resolved against ``base``."""
        def local(value: str | None) -> str | None:
            if value is None or Path(value).is_absolute():
                return value
            return str((base / value).resolve())

        self.output = local(self.output) or self.output
        self.generate.fewshot = local(self.generate.fewshot)
        if self.generate.template.endswith(".toml"):
            self.generate.template = local(self.generate.template) or self.generate.template
        if (base / self.corpus).is_dir():
            self.corpus = str((base / self.corpus).resolve())
        return self
