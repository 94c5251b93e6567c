"""``anjuka retention run`` and ``anjuka persons export``."""

from __future__ import annotations

import getpass
import json
from datetime import date, datetime
from pathlib import Path

import click
from flask.cli import with_appcontext

from anjuka.core.db import db
from anjuka.core.progress import progress_bar
from anjuka.core.time import local_today
from anjuka.core.transactions import command_transaction
from anjuka.persons.models import DOCUMENT_TYPES


def _operator(given: str | None) -> str:
    return given or f"cli:{getpass.getuser()}"


@click.group()
def retention() -> None:
    """Retention of personal data (docs/privacy.md)."""


@retention.command("run")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="the registry day to judge on (default: today in ANJUKA_TIMEZONE)",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--operator", help="who runs it, for the audit trail (default: the OS user)")
@with_appcontext
def retention_run(as_of: datetime | None, batch_size: int, operator: str | None) -> None:
    """Anonymise every person whose residences all ended longer ago than their area keeps them.

    Idempotent and resumable: each batch is committed; run it again after an
    interruption, or daily from a timer.
    """
    from anjuka.personal_data.retention import run_retention

    day: date = as_of.date() if as_of else local_today()
    with progress_bar() as bar:
        task = bar.add_task("retention", total=None)
        try:
            result = run_retention(
                day,
                batch=batch_size,
                operator=_operator(operator),
                started=lambda total: bar.update(task, total=total),
                advanced=lambda n: bar.advance(task, n),
            )
        except BaseException:
            db.session.rollback()
            raise
    click.echo(
        f"retention as of {result.as_of}: {result.anonymised} persons anonymised"
        f" ({result.candidates} examined)"
    )


@click.group()
def persons() -> None:
    """Persons: a lawful request's data export."""


@persons.command("export")
@click.option("--document-number", required=True)
@click.option(
    "--document-type", type=click.Choice(DOCUMENT_TYPES), default="resident_id", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the JSON here (default: standard output)",
)
@click.option(
    "--pdf", "pdf_file", type=click.Path(dir_okay=False, path_type=Path), help="also as a PDF"
)
@click.option("--operator", help="who runs it, for the audit trail (default: the OS user)")
@with_appcontext
def persons_export(
    document_number: str,
    document_type: str,
    out: Path | None,
    pdf_file: Path | None,
    operator: str | None,
) -> None:
    """Everything held about one person, with who saw it (JSON, and a PDF); audited."""
    from anjuka.personal_data.export import export_person
    from anjuka.personal_data.pdf import render_pdf
    from anjuka.persons.identity import parse_document

    with command_transaction():
        document = parse_document(document_type, document_number)
        export = export_person(
            document,
            form="json+pdf" if pdf_file else "json",
            chain="system",
            actor=("operator", None, _operator(operator)[:80]),
        )
        text = json.dumps(export, ensure_ascii=False, indent=2)
        document_pdf = render_pdf(export) if pdf_file else None
    for path, data in ((out, text.encode()), (pdf_file, document_pdf)):
        if path is not None and data is not None:
            # Personal data: readable by its owner only.
            path.touch(mode=0o600, exist_ok=True)
            path.chmod(0o600)
            path.write_bytes(data)
    if out is None:
        click.echo(text)
