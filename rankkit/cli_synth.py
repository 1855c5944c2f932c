"""CLI commands for synthetic training data: ``rankkit synth duqgen --config pipelines/duqgen_scifact.yaml``.

The config is :class:`rankkit.synth.config.DUQGenConfig`, read and validated with the same
options as the training commands (``--config``, ``--output``, ``--seed``, ``--set``, ``--quiet``).
A killed run started again with the same config continues its query generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rankkit.cli_train import training_options

if TYPE_CHECKING:
    from rankkit.synth.config import DUQGenConfig


@click.group("synth")
def synth_group() -> None:
    """Build synthetic training data for a corpus that has no labels (DUQGen)."""


@synth_group.command("duqgen")
@training_options("rankkit.synth.config.DUQGenConfig", "DUQGen YAML (DUQGenConfig).",
                  "Folder to write (overrides the config's output).",
                  "Override a config key: --set sample.n=100 (repeatable).", resume=False)
def duqgen_cmd(cfg: DUQGenConfig, base: Path, show_progress: bool) -> None:
    """Cluster the corpus, sample documents, generate one query each, mine negatives; write a BEIR folder."""
    from rankkit.synth.duqgen import run_duqgen

    result = run_duqgen(cfg, base, show_progress=show_progress)
    gen = result.card["generation"]
    click.echo(f"folder: {result.output}")
    click.echo(f"queries: {result.queries} of {result.card['sampled_docs']} sampled documents; "
               f"dropped: {({k: v for k, v in gen['reasons'].items() if k != 'ok'}) or 'none'}; "
               f"{gen['tokens_per_second']:.1f} generated tokens/s")
    click.echo(f"train with: data.dataset: {result.output}, data.split: train, "
               f"data.first_stage: {result.output / 'negatives.trec'}")


def register(app: click.Group) -> None:
    """Attach the ``synth`` command group to the main CLI."""
    app.add_command(synth_group)
