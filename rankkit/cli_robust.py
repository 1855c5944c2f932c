"""CLI commands for robustness: ``rankkit certify --config ...`` and ``rankkit attack --config ...``.

The configs are :class:`rankkit.robust.config.CertifyConfig` and
:class:`rankkit.robust.config.AttackJobConfig`, read and validated like the training configs
(``--config``, ``--output``, ``--seed``, ``--set``, ``--quiet``) before any data or model loads.
Both write JSON, a Markdown table and a plot into the output folder (CRQ against K; attack success per ranker).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rankkit.cli_train import training_options

if TYPE_CHECKING:
    from rankkit.robust.config import AttackJobConfig, CertifyConfig


@click.command("certify")
@training_options("rankkit.robust.config.CertifyConfig", "Certification YAML (CertifyConfig).",
                  "Folder to write (overrides the config's output).",
                  "Override a config key: --set samples=[100] (repeatable).", resume=False)
def certify_cmd(cfg: CertifyConfig, base: Path, show_progress: bool) -> None:
    """Certify a smoothed ranker (CertDR): CRQ@K for each N, clean nDCG@10, and an attack soundness check."""
    from rankkit.robust.report import run_certify

    report = run_certify(cfg, base, show_progress=show_progress)
    _show(base / cfg.output, ["certify.md", "certify.json", "crq.png"], report["minutes"])


@click.command("attack")
@training_options("rankkit.robust.config.AttackJobConfig", "Attack YAML (AttackJobConfig).",
                  "Folder to write (overrides the config's output).",
                  "Override a config key: --set attack.budget=10 (repeatable).", resume=False)
def attack_cmd(cfg: AttackJobConfig, base: Path, show_progress: bool) -> None:
    """Attack each ranker's rank-K+1 document with synonym substitutions: the robustness report."""
    from rankkit.robust.report import run_attack

    report = run_attack(cfg, base, show_progress=show_progress)
    _show(base / cfg.output, ["attack.md", "attack.json", "attack.png"], report["minutes"])


def _show(out: Path, files: list[str], minutes: float) -> None:
    """Print the job's Markdown table (the first file) and where its files are."""
    click.echo((out / files[0]).read_text())
    click.echo(f"written: {', '.join(str(out / f) for f in files)} ({minutes:.1f} min)")


def register(app: click.Group) -> None:
    """Attach ``certify`` and ``attack`` to the main CLI."""
    app.add_command(certify_cmd)
    app.add_command(attack_cmd)
