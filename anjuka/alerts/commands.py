"""``anjuka sweep``: raise the alerts that time alone triggers (run from cron or a timer)."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from flask.cli import with_appcontext


@click.command("sweep")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="the day to judge deadlines on (default: today, in the registry's time zone)",
)
@click.option(
    "--expiring-days",
    default=30,
    show_default=True,
    type=click.IntRange(0, 3650),
    help="warn this many days before a registration or card expires",
)
@click.option(
    "--reader-silence-hours",
    default=48,
    show_default=True,
    type=click.IntRange(1, 24 * 365),
    help="a desk reader not heard from for this long is offline",
)
@with_appcontext
def sweep(as_of: datetime | None, expiring_days: int, reader_silence_hours: int) -> None:
    """Raise card_not_returned, late_registration, registration_expiring, card_expiring
    and reader_offline alerts; resolve those whose cause is gone. Idempotent; safe to
    run on several hosts at once (the second waits or skips). Also deletes the
    idempotency keys past their lifetime."""
    from anjuka.alerts.sweep import run_sweep
    from anjuka.core.idempotency import purge_expired
    from anjuka.core.transactions import command_transaction

    with command_transaction():
        report = run_sweep(
            as_of.date() if as_of else None,
            expiring_days=expiring_days,
            reader_silence=timedelta(hours=reader_silence_hours),
        )
        purged = purge_expired()
    click.echo(report.summary())
    click.echo(f"idempotency keys expired and deleted: {purged}")
