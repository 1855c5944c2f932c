"""The smoothed ranker (estimates, score cache, stage plumbing) and the greedy attack, with toy scorers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rankkit.cache import PairScoreCache
from rankkit.data.dataset import Dataset
from rankkit.errors import ConfigError
from rankkit.robust.attack import AttackConfig, greedy_attack
from rankkit.robust.perturb import PerturbationTable, Substituter
from rankkit.robust.smoothing import SmoothedRanker, first_words
from rankkit.types import Document, Query, Run

TABLE = PerturbationTable.from_neighbours({"big": {"large", "huge"}, "fast": {"quick"}, "quick": {"rapid"},
                                           "rapid": {"speedy"}}, max_set=3)


class CountingScorer:
    """score = 2 * (#"huge") + (#"quick") - (#"big"); records every text it is asked about."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, query: str, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([2.0 * t.lower().split().count("huge") + t.lower().split().count("quick")
                         - t.lower().split().count("big") for t in texts])


def _dataset() -> Dataset:
    docs = [Document("d1", "big fast car"), Document("d2", "huge quick car"), Document("d3", "plain words only"),
            Document("d4", "big big big fast")]
    return Dataset("toy", lambda: iter(docs), [Query("q1", "car")])


def test_smoothed_score_is_the_mean_sigmoid_over_samples() -> None:
    scorer = CountingScorer()
    ranker = SmoothedRanker(_dataset(), scorer=scorer, identity={"toy": 1}, table=TABLE, samples=50, seed=3)
    got = ranker.smoothed_scores("car", ["big fast car"])[0]
    samples = Substituter(TABLE, seed=3).sample("big fast car", 50)
    expect = np.mean(1 / (1 + np.exp(-CountingScorer()("car", samples))))
    assert got == pytest.approx(expect)
    assert 0.0 <= got <= 1.0


def test_pairs_are_never_scored_twice(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    scorer = CountingScorer()
    ranker = SmoothedRanker(_dataset(), scorer=scorer, identity={"toy": 1}, table=TABLE, samples=100,
                            cache_dir=tmp_path, show_progress=False)
    run = Run({"q1": {"d1": 4.0, "d2": 3.0, "d3": 2.0, "d4": 1.0}})
    with caplog.at_level("INFO", logger="rankkit.robust.smoothing"):
        out = ranker([Query("q1", "car")], run)
    assert "1 of 4 candidates have no perturbable word (e.g. d3)" in caplog.text
    assert len(scorer.seen) == len(set(scorer.seen))  # each distinct text scored once
    assert ranker.stats["pairs"] == 4 * 100 + 4 and ranker.stats["scored"] == len(scorer.seen)
    # d3 has no perturbable word: its 100 samples and its clean text are one pair
    assert sum(1 for t in scorer.seen if t == "plain words only") == 1
    assert ranker.bounds["d3"] == 0.0 and 0.0 < ranker.bounds["d1"] <= 1.0
    assert ranker.base_scores["q1"]["d2"] == 3.0
    texts = {"d1": "big fast car", "d2": "huge quick car", "d3": "plain words only", "d4": "big big big fast"}
    assert dict(out["q1"]) == pytest.approx({d: ranker.smoothed_scores("car", [t])[0] for d, t in texts.items()})
    # N = 40 reuses the first 40 of the 100 samples; a new ranker reads the on-disk cache
    again = CountingScorer()
    small = SmoothedRanker(_dataset(), scorer=again, identity={"toy": 1}, table=TABLE, samples=40,
                           cache_dir=tmp_path, show_progress=False)
    small([Query("q1", "car")], run)
    assert again.seen == [] and small.stats["scored"] == 0
    other = SmoothedRanker(_dataset(), scorer=CountingScorer(), identity={"toy": 2}, table=TABLE, samples=5,
                           cache_dir=tmp_path, show_progress=False)
    other([Query("q1", "car")], run)
    assert other.stats["scored"] > 0  # another scorer identity: another cache


def test_pair_cache_without_disk() -> None:
    cache = PairScoreCache(None, {"x": 1})
    calls: list[int] = []

    def f(q: str, texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.arange(len(texts), dtype=float)

    assert cache.scores("q", ["a", "b", "a"], f).tolist() == [0.0, 1.0, 0.0]
    assert cache.scores("q", ["b", "c"], f).tolist() == [1.0, 0.0]
    assert calls == [2, 1]


def test_first_words() -> None:
    assert first_words("One, two; three four.", 3) == "One, two; three"
    assert first_words("short", 9) == "short"
    assert first_words("kept whole", None) == "kept whole"


def test_smoothed_ranker_needs_a_scorer_and_a_table() -> None:
    with pytest.raises(ConfigError, match="exactly one of base"):
        SmoothedRanker(_dataset(), samples=10)
    with pytest.raises(ConfigError, match="perturbation table"):
        _ = SmoothedRanker(None, scorer=CountingScorer(), samples=10).table


def test_greedy_attack_uses_only_admissible_substitutions() -> None:
    scorer = CountingScorer()
    text = "Big fast car, big and fast."
    res = greedy_attack("car", text, threshold=2.5, table=TABLE, scorer=scorer)
    assert res.success and res.score > 2.5 and res.original_score == -2.0
    for old, new in res.substitutions:
        assert new.lower() in TABLE.neighbours[old.lower()]
    assert Substituter(TABLE).split(res.text)[0][0::2] == Substituter(TABLE).split(text)[0][0::2]  # separators kept
    assert res.text.startswith("Huge")  # case carried over
    # a budget of one substitution stops early
    one = greedy_attack("car", text, threshold=10.0, table=TABLE, scorer=CountingScorer(),
                        config=AttackConfig(budget=1))
    assert len(one.substitutions) == 1 and not one.success
    # a document with no perturbable word is returned unchanged
    none = greedy_attack("car", "plain words only", threshold=0.5, table=TABLE, scorer=CountingScorer())
    assert none.text == "plain words only" and not none.success and none.substitutions == []
