"""CLI commands for robustness: ``rankkit certify --config ...`` and ``rankkit attack --config ...``.

The configs are :class:`rankkit.robust.config.CertifyConfig` and
:class:`rankkit.robust.config.AttackJobConfig`, read and validated like the training configs
(``--config``, ``--output``, ``--seed``, ``--set``, ``--quiet``) before any data or model loads.
Both write JSON and a Markdown table into the output folder (certification also a CRQ plot).
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
    out = Path(cfg.output) if Path(cfg.output).is_absolute() else base / cfg.output
    click.echo((out / "certify.md").read_text())
    click.echo(f"written: {out / 'certify.json'}, {out / 'certify.md'}, {out / 'crq.png'} "
               f"({report['minutes']:.1f} min)")


@click.command("attack")
@training_options("rankkit.robust.config.AttackJobConfig", "Attack YAML (AttackJobConfig).",
                  "Folder to write (overrides the config's output).",
                  "Override a config key: --set attack.budget=10 (repeatable).", resume=False)
def attack_cmd(cfg: AttackJobConfig, base: Path, show_progress: bool) -> None:
    """Attack each ranker's rank-K+1 document with synonym substitutions: the robustness report."""
    from rankkit.robust.report import run_attack

    report = run_attack(cfg, base, show_progress=show_progress)
    out = Path(cfg.output) if Path(cfg.output).is_absolute() else base / cfg.output
    click.echo((out / "attack.md").read_text())
    click.echo(f"written: {out / 'attack.json'}, {out / 'attack.md'} ({report['minutes']:.1f} min)")


def register(app: click.Group) -> None:
    """Attach ``certify`` and ``attack`` to the main CLI."""
    app.add_command(certify_cmd)
    app.add_command(attack_cmd)
