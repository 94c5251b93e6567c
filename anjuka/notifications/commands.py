"""``anjuka webhooks``: the delivery worker, for cron, systemd or a terminal."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.group()
def webhooks() -> None:
    """Webhook deliveries."""


@webhooks.command("deliver")
@click.option("--once", is_flag=True, help="one pass over what is due, then exit")
@click.option("--interval", default=5.0, show_default=True, help="seconds between passes when idle")
@with_appcontext
def deliver(once: bool, interval: float) -> None:
    """Send due webhook deliveries, retrying failures with backoff (loops until stopped)."""
    from anjuka.notifications.operations import deliver_due, run_worker

    if once:
        report = deliver_due()
        click.echo(
            f"{report.delivered} delivered, {report.failed} failed (will retry),"
            f" {report.abandoned} abandoned"
        )
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo(f"delivering webhooks every {interval:g} s when idle; Ctrl-C stops")
    try:
        run_worker(app, interval=interval)
    except KeyboardInterrupt:
        click.echo("stopped")
