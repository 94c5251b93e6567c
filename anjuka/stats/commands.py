"""``anjuka stats rebuild``: the figures recomputed from the registry."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group()
def stats() -> None:
    """Occupancy statistics."""


@stats.command("rebuild")
@with_appcontext
def stats_rebuild() -> None:
    """Recompute every figure from the registry (after a bulk import, or to repair)."""
    from anjuka.core.transactions import command_transaction
    from anjuka.stats.operations import rebuild

    with command_transaction():
        report = rebuild()
    click.echo(
        f"stats rebuilt: {report.residents} residents in {report.areas} areas,"
        f" {report.dwellings} dwellings, {report.days} area-days"
    )
