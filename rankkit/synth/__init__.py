"""Synthetic training data from a target corpus alone: DUQGen (Chandradevan et al., NAACL 2024).

- :mod:`rankkit.synth.config`: :class:`DUQGenConfig`, the one config (``pipelines/duqgen_*.yaml``);
- :mod:`rankkit.synth.sampling`: k-means, the elbow suggestion, budget allocation, softmax sampling, MMR;
- :mod:`rankkit.synth.querygen`: the few-shot prompt, batched resumable generation, the cleaning rules;
- :mod:`rankkit.synth.duqgen`: :func:`run_duqgen`, corpus -> BEIR folder (queries, qrels, negatives, card).

Importing this package is light: models load when :func:`run_duqgen` runs.
"""

from __future__ import annotations

from rankkit.synth.config import DUQGenConfig
from rankkit.synth.duqgen import DUQGenResult, run_duqgen

__all__ = ["DUQGenConfig", "DUQGenResult", "run_duqgen"]
