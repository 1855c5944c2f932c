"""A greedy word-substitution ranking attack in the style of PRADA.

PRADA: Wu, Zhang, Guo, de Rijke, Fan and Cheng, "PRADA: Practical Black-Box Adversarial
Attacks against Neural Ranking Models", TOIS 2023 (arXiv 2204.01321); the attack CertDR
certifies against (Wu et al., CIKM 2022). The query is fixed; the attacker rewrites one
target document, replacing up to ``budget`` words each by one of its neighbours in the
perturbation table (the same admissible substitutions the certificate covers), to push it
above a threshold score (the K-th document's).

Black-box and greedy: each perturbable word's importance is the drop of the target's score
when the word is deleted (scored by ``importance`` scorer, the attacked ranker by default; a
cheap base ranker for an expensive smoothed one); words are visited from the most important
down, and at each the neighbour that raises the attacked ranker's score most is kept, if any
does. The attack stops when the target passes the threshold, or after ``budget`` substitutions
or ``max_positions`` visited words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from rankkit.config import PositiveInt, validate_fields
from rankkit.robust.perturb import WORD, PerturbationTable, TextScorer, case_like

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AttackConfig:
    """Attack budget: at most ``budget`` substituted words, ``max_positions`` words tried, and at most
    ``candidates`` neighbours tried per word (the first in the table's order)."""

    budget: PositiveInt = 20
    max_positions: PositiveInt = 40
    candidates: PositiveInt = 20

    def __post_init__(self) -> None:
        validate_fields(self, "attack")


@dataclass
class AttackResult:
    """The attacked text, its score before and after, the substitutions made and the queries spent."""

    text: str
    original_score: float
    score: float
    threshold: float
    substitutions: list[tuple[str, str]] = field(default_factory=list)
    evaluations: int = 0

    @property
    def success(self) -> bool:
        """Whether the target passed the threshold."""
        return self.score > self.threshold


def greedy_attack(query: str, text: str, threshold: float, table: PerturbationTable, scorer: TextScorer,
                  config: AttackConfig | None = None, importance: TextScorer | None = None) -> AttackResult:
    """Rewrite ``text`` with admissible substitutions to score above ``threshold`` under ``scorer``."""
    cfg = config or AttackConfig()
    pieces = WORD.split(text)
    slots = [i for i in range(1, len(pieces), 2) if table.neighbours.get(pieces[i].lower())]
    score0 = float(scorer(query, [text])[0])
    result = AttackResult(text, score0, score0, threshold, evaluations=1)
    if not slots or result.success:
        return result
    imp = importance or scorer
    deleted = ["".join(pieces[:i] + pieces[i + 1:]) for i in slots]
    base = float(imp(query, [text])[0]) if importance is not None else score0
    drops = base - np.asarray(imp(query, deleted), dtype=np.float64)
    result.evaluations += len(deleted) + (importance is not None)
    order = [slots[j] for j in np.argsort(-drops, kind="stable")][:cfg.max_positions]
    current = score0
    for i in order:
        word = pieces[i]
        options = [case_like(n, word) for n in table.neighbours[word.lower()][:cfg.candidates]]
        trials = []
        for option in options:
            trial = list(pieces)
            trial[i] = option
            trials.append("".join(trial))
        scores = np.asarray(scorer(query, trials), dtype=np.float64)
        result.evaluations += len(trials)
        best = int(np.argmax(scores))
        if scores[best] > current:
            pieces[i] = options[best]
            current = float(scores[best])
            result.substitutions.append((word, options[best]))
            if current > threshold or len(result.substitutions) >= cfg.budget:
                break
    result.text = "".join(pieces)
    result.score = current
    return result
