"""Difficulty heuristics, ease weights and annealing of rankkit.train.curriculum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankkit.errors import ConfigError
from rankkit.train.curriculum import (
    EPS,
    HEURISTICS,
    Curriculum,
    CurriculumConfig,
    Difficulty,
    anneal,
    kde_cdf,
    pairwise_ease,
    pointwise_ease,
)
from rankkit.types import Run

RUN = Run({"q1": {"d1": 3.0, "d2": 1.0, "d3": 2.0, "d4": 0.0}, "flat": {"a": 1.5, "b": 1.5, "c": 1.5}})


def test_heuristics_constant() -> None:
    assert HEURISTICS == ("reciprank", "normscore", "kdescore")


def test_reciprank_values_and_unretrieved_default() -> None:
    diff = Difficulty(RUN, "reciprank")
    assert diff("q1", "d1") == 1.0
    assert diff("q1", "d3") == 0.5
    assert diff("q1", "d2") == pytest.approx(1 / 3)
    assert diff("q1", "d4") == 0.25
    assert diff("q1", "missing") == pytest.approx(1 / 1000)
    assert diff("no-such-query", "d1") == pytest.approx(1 / 1000)
    assert Difficulty(RUN, "reciprank", unretrieved_rank=50)("q1", "x") == pytest.approx(1 / 50)


def test_reciprank_ties_follow_run_order() -> None:
    diff = Difficulty(RUN, "reciprank")
    # equal scores: docid descending, as trec_eval
    assert [diff("flat", d) for d in ("c", "b", "a")] == [1.0, 0.5, pytest.approx(1 / 3)]


def test_normscore_values_and_guards() -> None:
    diff = Difficulty(RUN, "normscore")
    assert [diff("q1", d) for d in ("d1", "d2", "d3", "d4")] == pytest.approx([1.0, 1 / 3, 2 / 3, 0.0])
    assert diff("q1", "missing") == 0.0
    assert [diff("flat", d) for d in "abc"] == [0.5, 0.5, 0.5]
    assert diff("flat", "zzz") == 0.0


def test_kdescore_all_equal_is_neutral() -> None:
    diff = Difficulty(Run({"q": {"x": 2.0, "y": 2.0}, "one": {"z": 7.0}}), "kdescore")
    assert diff("q", "x") == 0.5 and diff("q", "y") == 0.5
    assert diff("one", "z") == 0.5
    assert diff("q", "absent") == 0.0


def test_kde_cdf_matches_scipy_and_is_monotone() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    scores = rng.normal(10.0, 3.0, size=200)
    kde = stats.gaussian_kde(scores)
    grid = np.concatenate([scores, np.linspace(scores.min() - 5, scores.max() + 5, 101)])
    cdf = kde_cdf(scores, grid)
    expected = np.array([kde.integrate_box_1d(-np.inf, s) for s in grid])
    np.testing.assert_allclose(cdf, expected, atol=1e-6)
    assert np.all((cdf >= 0) & (cdf <= 1))
    ordered = cdf[np.argsort(grid)]
    assert np.all(np.diff(ordered) >= 0)


def test_kdescore_difficulty_is_monotone_in_score() -> None:
    rng = np.random.default_rng(1)
    scores = rng.gamma(2.0, 2.0, size=300)
    run = Run({"q": {f"d{i}": s for i, s in enumerate(scores)}})
    diff = Difficulty(run, "kdescore")
    values = np.array([diff("q", f"d{i}") for i in np.argsort(scores)])
    assert np.all(np.diff(values) >= 0)
    assert np.all((values >= 0) & (values <= 1))


def test_unknown_heuristic_names_allowed_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        Difficulty(RUN, "recip_rank")
    message = str(info.value)
    assert "recip_rank" in message and "did you mean 'reciprank'" in message
    assert all(name in message for name in HEURISTICS)


def test_pointwise_formula() -> None:
    D = torch.tensor([[0.9, 0.2, 0.7]])
    labels = torch.tensor([[1, 0, 0]])
    w = pointwise_ease(D, labels)
    torch.testing.assert_close(w, torch.tensor([[0.9, 0.8, 0.3]]) + EPS)


def test_pairwise_formula_single_and_several_negatives() -> None:
    D = torch.tensor([[0.8, 0.2, 0.0], [0.5, 0.9, 0.1], [0.3, 0.6, 0.1]])
    labels = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 0]])
    w = pairwise_ease(D, labels)
    # row 0: min((0.8-0.2+1)/2, (0.8-0.0+1)/2) = 0.8
    # row 1: min((0.5-0.9+1)/2, (0.5-0.1+1)/2) = 0.3
    # row 2: two positives, one negative: min((0.3-0.1+1)/2, (0.6-0.1+1)/2) = 0.6
    torch.testing.assert_close(w, torch.tensor([0.8, 0.3, 0.6]) + EPS)


def test_pairwise_without_pairs_is_one() -> None:
    D = torch.tensor([[0.3, 0.4], [0.3, 0.4]])
    labels = torch.tensor([[1, 1], [0, 0]])
    for anti in (False, True):
        torch.testing.assert_close(pairwise_ease(D, labels, anti=anti), torch.ones(2) + EPS)


def test_anti_is_one_minus_w_plus_eps() -> None:
    D = torch.tensor([[0.9, 0.2, 0.7]])
    labels = torch.tensor([[1, 0, 0]])
    torch.testing.assert_close(pointwise_ease(D, labels, anti=True), 1 - torch.tensor([[0.9, 0.8, 0.3]]) + EPS)
    torch.testing.assert_close(pairwise_ease(D, labels, anti=True), 1 - torch.tensor([0.6]) + EPS)  # min(0.85, 0.6)


def test_eps_keeps_weights_positive() -> None:
    D = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([[1, 0]])
    assert pointwise_ease(D, labels)[0, 0].item() == pytest.approx(EPS, abs=1e-12)
    assert pairwise_ease(D, labels).item() == pytest.approx(EPS, abs=1e-12)
    assert torch.all(pointwise_ease(D, labels) > 0)


def test_anneal_schedule() -> None:
    w = torch.tensor([0.2, 0.6, 1.0])
    torch.testing.assert_close(anneal(w, 0, 10), w)
    torch.testing.assert_close(anneal(w, 4, 10), w * 0.6 + 0.4)
    assert torch.equal(anneal(w, 10, 10), torch.ones(3))
    assert torch.equal(anneal(w, 25, 10), torch.ones(3))
    assert torch.equal(anneal(w, 0, 0), torch.ones(3))


def test_curriculum_weights_follow_schedule() -> None:
    cur = Curriculum(CurriculumConfig(heuristic="normscore", end_step=10), total_steps=100, pointwise_objective=True)
    D = torch.tensor([[0.9, 0.2], [0.4, 0.5]])
    labels = torch.tensor([[1, 0], [1, 0]])
    raw = torch.tensor([[0.9, 0.8], [0.4, 0.5]]) + EPS
    torch.testing.assert_close(cur.weights(D, labels, 0), raw)
    torch.testing.assert_close(cur.weights(D, labels, 5), raw * 0.5 + 0.5)
    assert torch.equal(cur.weights(D, labels, 10), torch.ones(2, 2))
    pair = Curriculum(CurriculumConfig(heuristic="normscore", end_step=10), 100, pointwise_objective=False)
    torch.testing.assert_close(pair.weights(D, labels, 0), torch.tensor([0.85, 0.45]) + EPS)
    assert pair.weights(D, labels, 99).shape == (2,)


def test_curriculum_without_heuristic_is_ones() -> None:
    D, labels = torch.rand(3, 4), torch.zeros(3, 4)
    assert torch.equal(Curriculum(CurriculumConfig(), 100, True).weights(D, labels, 0), torch.ones(3, 4))
    assert torch.equal(Curriculum(CurriculumConfig(), 100, False).weights(D, labels, 0), torch.ones(3))


def test_end_step_resolution() -> None:
    assert Curriculum(CurriculumConfig("kdescore", end_step=0.2), 1000, True).end_step == 200
    assert Curriculum(CurriculumConfig("kdescore", end_step=1.0), 1000, True).end_step == 1000
    assert Curriculum(CurriculumConfig("kdescore", end_step=1), 1000, True).end_step == 1000
    assert Curriculum(CurriculumConfig("kdescore", end_step=250), 1000, True).end_step == 250
    assert Curriculum(CurriculumConfig("kdescore", end_step=5000), 1000, True).end_step == 5000
    assert Curriculum(CurriculumConfig("kdescore", end_step=0.001), 10, True).end_step == 1


def test_form_override() -> None:
    cur = Curriculum(CurriculumConfig("reciprank", form="pairwise"), 10, pointwise_objective=True)
    assert cur.weights(torch.rand(2, 3), torch.tensor([[1, 0, 0], [1, 0, 0]]), 0).shape == (2,)


def test_batch_weighting_uses_batch_mean() -> None:
    D = torch.tensor([[0.9, 0.2], [0.4, 0.5]])
    labels = torch.tensor([[1, 0], [1, 0]])
    sample = Curriculum(CurriculumConfig("normscore", end_step=10), 100, True)
    batch = Curriculum(CurriculumConfig("normscore", end_step=10, weighting="batch"), 100, True)
    for step in (0, 3):
        w = batch.weights(D, labels, step)
        assert w.shape == (2, 2)
        torch.testing.assert_close(w, torch.full((2, 2), sample.weights(D, labels, step).mean().item()))
    assert torch.equal(batch.weights(D, labels, 10), torch.ones(2, 2))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"heuristic": "kde"}, "heuristic"),
        ({"end_step": 0}, "end_step"),
        ({"end_step": -0.5}, "end_step"),
        ({"end_step": 10.5}, "whole number"),
        ({"end_step": float("nan")}, "end_step"),
        ({"anti": "yes"}, "anti"),
        ({"form": "listwise"}, "form"),
        ({"weighting": "group"}, "weighting"),
    ],
)
def test_config_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        CurriculumConfig(**kwargs)


def test_config_loader_turns_errors_into_config_error() -> None:
    from rankkit.config import from_mapping

    with pytest.raises(ConfigError, match="did you mean 'kdescore'"):
        from_mapping(CurriculumConfig, {"heuristic": "kdescor"}, where="train.curriculum")
