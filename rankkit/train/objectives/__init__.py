"""Training objectives as objects, one file per family, resolved by name from configs.

``objective: softmax`` or ``objective: {name: margin, margin: 0.5}`` in a training YAML
builds the registered class with the remaining keys as its settings; an unknown name
or setting is a :class:`ConfigError` that names it and suggests the closest one. A new
objective is one module with an :class:`Objective` dataclass plus one line in
:data:`OBJECTIVES`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from rankkit.errors import ConfigError
from rankkit.train.objectives.base import Objective, ObjectiveOutput, weighted_mean
from rankkit.train.objectives.infonce import InfoNCE
from rankkit.train.objectives.listwise import Softmax
from rankkit.train.objectives.pairwise import Margin, RankNet
from rankkit.train.objectives.pgrank import PlackettLucePG
from rankkit.train.objectives.pointwise import BCE
from rankkit.train.objectives.tsp import TSPHybrid, TSPLocal, TSPMargin

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (BCE, RankNet, Margin, Softmax, InfoNCE, PlackettLucePG,
                                                                 TSPLocal, TSPMargin, TSPHybrid)}
ALIASES = {"pointwise": "bce", "pairwise": "ranknet", "hinge": "margin", "listwise": "softmax",
           "listnet": "softmax", "ce": "softmax", "contrastive": "infonce",
           "pgrank": "plackett_luce_pg", "pg_rank": "plackett_luce_pg",
           "tsp_global": "tsp_margin", "tsprank": "tsp_hybrid"}

__all__ = ["ALIASES", "BCE", "OBJECTIVES", "InfoNCE", "Margin", "Objective", "ObjectiveOutput", "RankNet",
           "PlackettLucePG", "Softmax", "TSPHybrid", "TSPLocal", "TSPMargin", "build_objective", "canonical_objective", "objective_spec", "weighted_mean"]


def canonical_objective(name: str) -> str:
    """The registered name of an objective (aliases resolved); an unknown name raises :class:`ConfigError`."""
    if not isinstance(name, str):
        raise ConfigError(f"objective name must be a string, got {name!r}")
    key = ALIASES.get(name.lower(), name.lower())
    if key not in OBJECTIVES:
        allowed = sorted({*OBJECTIVES, *ALIASES})
        hint = difflib.get_close_matches(name.lower(), allowed, n=1, cutoff=0.5)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"unknown objective {name!r}{suggestion}; choose one of {', '.join(allowed)}")
    return key


def objective_spec(value: str | Mapping[str, Any], where: str = "objective") -> dict[str, Any]:
    """Normalise ``value`` (a name, or a mapping with ``name`` and settings) to ``{"name": canonical, **settings}``.

    The settings are validated by building the objective, so errors surface when the config is read.
    """
    if isinstance(value, str):
        spec: dict[str, Any] = {"name": value}
    elif isinstance(value, Mapping):
        spec = dict(value)
        if "name" not in spec:
            raise ConfigError(f"{where}: a mapping needs a 'name' key (e.g. {{name: margin, margin: 0.5}})")
    else:
        raise ConfigError(f"{where}: expected an objective name or a mapping with 'name', got {value!r}")
    spec["name"] = canonical_objective(spec["name"])
    build_objective(spec, where)
    return spec


def build_objective(spec: str | Mapping[str, Any], where: str = "objective") -> Objective:
    """The :class:`Objective` for ``spec`` (a name, or ``{"name": ..., **settings}``)."""
    from rankkit.config import from_mapping

    if isinstance(spec, str):
        spec = {"name": spec}
    settings = dict(spec)
    cls = OBJECTIVES[canonical_objective(settings.pop("name"))]
    return from_mapping(cls, settings, f"{where} ({cls.name})")
