"""Noisy training (CertDR): documents replaced by samples of the certification sampler, per epoch and seed."""

from __future__ import annotations

from rankkit.config import from_mapping
from rankkit.robust.perturb import PerturbationTable, Substituter
from rankkit.train.config import TrainConfig
from rankkit.train.data import add_noise
from rankkit.types import Document, Query, TrainingGroup

TABLE = PerturbationTable.from_neighbours({"big": {"large", "huge"}, "fast": {"quick"}})


def _groups() -> list[TrainingGroup]:
    docs = [Document(f"d{i}", f"a big fast car with big wheels {'x' * (i + 1)}", title="Big cars") for i in range(40)]
    return [TrainingGroup(Query("q", "car"), docs[i:i + 4], [1.0, 0.0, 0.0, 0.0]) for i in range(0, 40, 4)]


def test_noise_is_seeded_per_epoch_and_keeps_labels() -> None:
    sub = Substituter(TABLE, seed=42)
    a = add_noise(_groups(), sub, 1.0, seed=42, epoch=0)
    assert a == add_noise(_groups(), Substituter(TABLE, seed=42), 1.0, seed=42, epoch=0)  # exact resume
    b = add_noise(_groups(), sub, 1.0, seed=42, epoch=1)
    texts_a = [d.text for g in a for d in g.docs]
    assert texts_a != [d.text for g in b for d in g.docs]  # fresh noise each epoch
    assert [g.labels for g in a] == [g.labels for g in _groups()]
    for g in a:
        for d in g.docs:
            words = d.text.split()
            assert words[0] == "a" and words[2] in ("fast", "quick") and words[3] == "car"  # only set members change
            assert d.title.split()[0] in ("Big", "Large", "Huge")
    assert len(set(texts_a)) > 1


def test_fraction_zero_keeps_documents_and_config_reads_noise() -> None:
    kept = add_noise(_groups(), Substituter(TABLE), 0.0, seed=1, epoch=0)
    assert [list(g.docs) for g in kept] == [list(g.docs) for g in _groups()]
    half = add_noise(_groups(), Substituter(TABLE), 0.5, seed=1, epoch=0)
    original = {d.docid: d.text for g in _groups() for d in g.docs}
    changed = sum(d.text != original[d.docid] for g in half for d in g.docs)
    assert 5 < changed < 35
    cfg = from_mapping(TrainConfig, {"noise": {"perturbation": {"source": "embedding", "similarity": 0.7},
                                               "fraction": 0.5}})
    assert cfg.noise is not None and cfg.noise.perturbation.similarity == 0.7 and cfg.noise.fraction == 0.5
