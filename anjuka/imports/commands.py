"""``anjuka gen-city`` (and, with the importer, ``anjuka import``)."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from anjuka.core.db import db
from anjuka.core.progress import progress_bar
from anjuka.core.time import local_today
from anjuka.imports.formats import IMPORT_KINDS


@click.command("gen-city")
@click.option("--scale", type=float, default=0.01, show_default=True, help="1 is Ningbo's size")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="folder for the CSV files and manifest.json",
)
@click.option(
    "--encoding", type=click.Choice(["utf-8", "gb18030"]), default="utf-8", show_default=True
)
def gen_city(scale: float, seed: int, out: Path, encoding: str) -> None:
    """Write a synthetic city as legacy CSV files (deterministic for a seed)."""
    from anjuka.imports.synthetic import CityGenerator

    try:
        generator = CityGenerator(scale, seed, local_today())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scale") from None
    with progress_bar() as bar:
        task = bar.add_task("gen-city", total=generator.expected_rows())
        written = 0

        def tick(n: int) -> None:
            nonlocal written
            written += n
            if written % 5000 == 0:
                bar.update(task, completed=written)

        manifest = generator.write(out, encoding=encoding, progress=tick)
        bar.update(task, completed=written, total=written)
    for kind, count in sorted(manifest.rows.items()):
        click.echo(f"{kind}: {count} rows")


@click.command("import")
@click.argument("kind", type=click.Choice(IMPORT_KINDS))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="where to write the refused rows (default: FILE.rejects.csv)",
)
@click.option(
    "--batch", "batch_size", type=click.IntRange(1, 100_000), default=2000, show_default=True
)
@click.option(
    "--encoding",
    type=click.Choice(["utf-8", "gb18030"]),
    help="the file's encoding (default: told from its first bytes)",
)
@click.option("--operator", help="who runs the import, for the audit trail (default: the OS user)")
@with_appcontext
def import_command(
    kind: str,
    file: Path,
    report: Path | None,
    batch_size: int,
    encoding: str | None,
    operator: str | None,
) -> None:
    """Import legacy records (areas, then estates, dwellings, residents): docs/import.md.

    Rows that break the registry's rules are refused into the report, with
    their line numbers; run the same command again to resume an interrupted
    import (the file's SHA-256 identifies it).
    """
    from anjuka.imports.importer import run_import, write_rejects

    with progress_bar() as bar:
        task = bar.add_task(f"import {kind}", total=file.stat().st_size)

        def tick(done: int, size: int) -> None:
            bar.update(task, completed=done, total=size)

        try:
            result = run_import(
                kind,
                file,
                operator=operator,
                batch_size=batch_size,
                encoding=encoding,
                progress=tick,
            )
        except BaseException:
            db.session.rollback()
            raise
    click.echo(result.summary())
    target = report or file.with_name(file.name + ".rejects.csv")
    refused = write_rejects(result.digest, kind, target)
    if refused:
        click.echo(f"refused rows: {target}")
