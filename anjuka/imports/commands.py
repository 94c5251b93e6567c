"""``anjuka gen-city`` (and, with the importer, ``anjuka import``)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from anjuka.core.time import local_today


def progress_bar() -> Progress:
    """A progress bar with the rows done, their rate and the time left, on stderr."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(show_speed=True),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


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
