"""Certification maths (CertDR): the Monte Carlo margin, certificates, CRQ, and their bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankkit.errors import ConfigError
from rankkit.robust.certify import certify, check_samples, crq, hoeffding_margin, min_samples, ranked


def test_hoeffding_margin_formula() -> None:
    # eps = 2 sqrt(ln(2/alpha) / (2N)); the paper's N = 1000 at alpha 0.05 gives about 0.086
    assert hoeffding_margin(1000) == pytest.approx(2 * math.sqrt(math.log(40) / 2000))
    assert hoeffding_margin(1000) == pytest.approx(0.0859, abs=1e-4)
    assert hoeffding_margin(200, alpha=0.1) == pytest.approx(2 * math.sqrt(math.log(20) / 400))
    assert hoeffding_margin(100) > hoeffding_margin(1000)
    with pytest.raises(ValueError):
        hoeffding_margin(0)
    with pytest.raises(ValueError):
        hoeffding_margin(10, alpha=1.5)


def test_too_few_samples_is_said_not_reported_as_zero() -> None:
    n = min_samples()
    assert hoeffding_margin(n) < 1 <= hoeffding_margin(n - 1)
    check_samples(n)
    with pytest.raises(ConfigError, match=r"no query can ever be certified; use N >= 8"):
        check_samples(5)
    with pytest.raises(ConfigError, match="no query can ever be certified"):
        crq({"q": {"a": 0.9, "b": 0.1}}, {"a": 0.0, "b": 0.0}, [1], samples=3)


def test_certificate_by_hand() -> None:
    g = {"a": 0.9, "b": 0.6, "c": 0.3, "d": 0.2}
    o = {"a": 0.5, "b": 0.5, "c": 0.1, "d": 0.35}
    # K=2: 0.6 - max(0.3 + 0.1, 0.2 + 0.35) - eps
    assert certify(g, o, 2, 0.01).radius == pytest.approx(0.6 - 0.55 - 0.01)
    # the paper's rule: 0.6 - 0.3 - max(0.1, 0.35) - eps
    assert certify(g, o, 2, 0.01, rule="paper").radius == pytest.approx(0.6 - 0.3 - 0.35 - 0.01)
    assert not certify(g, o, 1, 0.0).certified  # 0.9 - (0.6 + 0.5) < 0
    assert ranked({"x": 1.0, "y": 1.0, "z": 2.0}) == ["z", "y", "x"]  # ties: docid descending, as Run


def test_per_document_rule_certifies_whatever_the_paper_rule_does() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        docs = [f"d{i}" for i in range(8)]
        g = dict(zip(docs, rng.random(8)))
        o = dict(zip(docs, rng.random(8) * 0.3))
        for k in range(1, 8):
            paper = certify(g, o, k, 0.05, rule="paper")
            ours = certify(g, o, k, 0.05)
            assert ours.radius >= paper.radius - 1e-12


def test_certification_is_monotone_in_gap_and_samples() -> None:
    rng = np.random.default_rng(1)
    o = {f"d{i}": float(x) for i, x in enumerate(rng.random(6) * 0.2)}
    for _ in range(100):
        g = {f"d{i}": float(x) for i, x in enumerate(rng.random(6))}
        k = int(rng.integers(1, 6))
        order = ranked(g)
        eps = hoeffding_margin(100)
        before = certify(g, o, k, eps)
        # widen the gap: raise the top K (order kept), and lower the rest
        wider = {d: (s + 0.1 if d in order[:k] else s - 0.1) for d, s in g.items()}
        assert certify(wider, o, k, eps).radius >= before.radius
        if before.certified:
            assert certify(wider, o, k, eps).certified
        # more samples: a smaller margin never loses a certificate
        for n in (200, 1000, 10000):
            assert certify(g, o, k, hoeffding_margin(n)).radius >= before.radius


def test_crq_aggregates_and_checks_k() -> None:
    scores = {"q1": {"a": 0.95, "b": 0.2, "c": 0.1}, "q2": {"a": 0.5, "b": 0.49, "c": 0.1}}
    bounds = {"a": 0.0, "b": 0.05, "c": 0.05}
    out = crq(scores, bounds, [1, 2], samples=1000)
    # q1 at K=1: 0.95 - 0.25 - 0.086 > 0; q2 at K=1: 0.5 - 0.54 - ... < 0; K=2: q1 0.2 - 0.15 - 0.086 < 0
    assert out == {1: 0.5, 2: 0.5 * (0.49 - 0.15 - hoeffding_margin(1000) > 0)}
    with pytest.raises(ConfigError, match="K = 3 is not below the candidate list"):
        crq(scores, bounds, [1, 3], samples=1000)
    with pytest.raises(ConfigError, match="K = 3 needs at least K \\+ 1"):
        certify(scores["q1"], bounds, 3, 0.1)
