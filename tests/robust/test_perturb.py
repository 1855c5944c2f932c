"""Perturbation sets, the substitution sampler and the total-variation bound (CertDR)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from rankkit.errors import ConfigError
from rankkit.robust.perturb import (PerturbationTable, PerturbConfig, Substituter, build_table, embedding_graph,
                                    vocabulary, words_of)

# A hand-made neighbour graph: {big, large, huge} is one small component; "fast" has a chain
# fast - quick - rapid - speedy, and with max_set 3 that component (4 words) is too large.
GRAPH = {"big": {"large"}, "large": {"huge"}, "fast": {"quick"}, "quick": {"rapid"}, "rapid": {"speedy"}}


def test_sets_on_a_hand_made_graph() -> None:
    t = PerturbationTable.from_neighbours(GRAPH, max_set=3)
    assert set(t.sets["big"]) == set(t.sets["huge"]) == {"big", "large", "huge"}
    # the 4-word component exceeds the cap: each word gets itself and its own neighbours
    assert set(t.sets["fast"]) == {"fast", "quick"}
    assert set(t.sets["quick"]) == {"quick", "fast", "rapid"}
    assert set(t.sets["speedy"]) == {"speedy", "rapid"}
    assert set(t.neighbours["large"]) == {"big", "huge"}  # the graph is made symmetric
    # whole components overlap fully; otherwise min over neighbours of |S & S'| / max(|S|, |S'|)
    assert t.overlap["big"] == 1.0
    assert t.overlap["fast"] == pytest.approx(2 / 3)  # S(fast)={fast,quick}, S(quick)={quick,fast,rapid}
    assert t.overlap["quick"] == pytest.approx(min(2 / 3, 2 / 3))
    assert t.overlap_of("Unknown") == 1.0
    # with the default cap the chain is one component
    assert PerturbationTable.from_neighbours(GRAPH).overlap["fast"] == 1.0


def test_table_round_trip_and_bad_file(tmp_path) -> None:
    t = PerturbationTable.from_neighbours(GRAPH, max_set=3, meta={"source": "hand"})
    path = t.save(tmp_path / "table.json")
    back = PerturbationTable.load(path)
    assert dict(back.sets) == dict(t.sets) and dict(back.overlap) == dict(t.overlap)
    assert not list(tmp_path.glob(".*tmp"))
    (tmp_path / "bad.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ConfigError, match="bad.json"):
        PerturbationTable.load(tmp_path / "bad.json")


def test_substitution_keeps_non_perturbable_tokens_and_case() -> None:
    t = PerturbationTable.from_neighbours(GRAPH, max_set=3)
    s = Substituter(t, seed=1)
    text = "The Big dog, 42 times FAST; unknown-words stay big."
    samples = s.sample(text, 200)
    pieces, slots = s.split(text)
    fixed = [i for i in range(len(pieces)) if i not in slots]
    seen: dict[int, Counter[str]] = {i: Counter() for i in slots}
    for sample in samples:
        sp = s.split(sample)[0] if len(words_of(sample)) == len(words_of(text)) else None
        assert sp is not None and len(sp) == len(pieces)
        assert [sp[i] for i in fixed] == [pieces[i] for i in fixed]  # punctuation, numbers, other words kept
        for i in slots:
            seen[i][sp[i]] += 1
    assert set(seen[slots[0]]) == {"Big", "Large", "Huge"}  # Title case carried over
    assert set(seen[slots[1]]) == {"FAST", "QUICK"}  # UPPER carried over
    assert set(seen[slots[2]]) == {"big", "large", "huge"}
    # roughly uniform over the set
    assert min(seen[slots[0]].values()) > 40


def test_fixed_seed_reproduces_and_samples_are_a_prefix_stream() -> None:
    t = PerturbationTable.from_neighbours(GRAPH, max_set=3)
    text = "big fast large quick huge rapid speedy " * 3
    a = Substituter(t, seed=7).sample(text, 50)
    assert a == Substituter(t, seed=7).sample(text, 50)
    assert a != Substituter(t, seed=8).sample(text, 50)
    assert Substituter(t, seed=7).sample(text, 10) == a[:10]
    assert Substituter(t, seed=7).sample(text, 15, start=20) == a[20:35]
    assert Substituter(t, seed=7).sample("no perturbable word here", 3) == ["no perturbable word here"] * 3


def _uniform_product(words: list[str], t: PerturbationTable) -> dict[tuple[str, ...], Fraction]:
    sets = [t.sets.get(w, (w,)) for w in words]
    p = Fraction(1, int(np.prod([len(s) for s in sets])))
    return {combo: p for combo in itertools.product(*sets)}


def test_bound_in_unit_interval_and_above_brute_force_total_variation() -> None:
    t = PerturbationTable.from_neighbours(GRAPH, max_set=3)
    doc = ["fast", "quick", "big", "speedy"]
    od = t.bound(" ".join(doc))
    assert 0.0 <= od <= 1.0
    clean = _uniform_product(doc, t)
    worst = 0.0
    # every admissible attack: each word kept or replaced by one of its neighbours
    options = [(w, *t.neighbours.get(w, ())) for w in doc]
    for adv in itertools.product(*options):
        attacked = _uniform_product(list(adv), t)
        tv = sum(abs(clean.get(k, 0) - attacked.get(k, 0)) for k in set(clean) | set(attacked)) / 2
        worst = max(worst, float(tv))
    assert worst <= od + 1e-12
    # for a single word the bound is the exact worst-case total variation
    for w in ("fast", "quick", "speedy", "big"):
        single = max(float(sum(abs(_uniform_product([w], t).get(k, 0) - _uniform_product([n], t).get(k, 0))
                               for k in set(_uniform_product([w], t)) | set(_uniform_product([n], t))) / 2)
                     for n in t.neighbours[w])
        assert t.bound(w) == pytest.approx(single)
    assert t.bound("nothing to change") == 0.0
    assert t.bound("") == 0.0


def test_vocabulary_threshold_and_stopwords() -> None:
    counts = vocabulary(["the big dog", "The big cat", "a dog"], min_count=2)
    assert counts == Counter({"big": 2, "dog": 2})
    assert vocabulary(["the the"], min_count=1, stopwords=False) == Counter({"the": 2})


def test_embedding_graph_threshold() -> None:
    vocab = ["ant", "bee", "cat", "dog"]
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 16))
    vecs = np.stack([base[0], base[0] + 0.01 * rng.normal(size=16), base[1], base[1] + 0.01 * rng.normal(size=16)])
    g = embedding_graph(vocab, vecs, similarity=0.9, remove_components=0)
    assert g == {"ant": {"bee"}, "bee": {"ant"}, "cat": {"dog"}, "dog": {"cat"}}
    t = build_table(["ant bee cat dog ant bee cat dog"], PerturbConfig(source="embedding", remove_components=0,
                                                             stopwords=False),
                    encode=lambda words: vecs[[vocab.index(w) for w in words]])
    assert set(t.sets["ant"]) == {"ant", "bee"}


def test_empty_corpus_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="nothing can be perturbed"):
        build_table(["once only"], PerturbConfig())
