"""``anjuka import``: legacy records in, row by row judged by the API's own rules.

Every row is validated as the API validates a request (the same marshmallow
schemas, the same document check, capacity counted the way the desk counts
it, one current residence per person); a bad row is recorded as rejected
with its line number and reason, and the import goes on. Rows go in by
batches: each batch, its rejections and the import's checkpoint (the last
line done) commit together, so an interrupted import resumes after its last
batch, with no row twice and none half-written. On PostgreSQL residences go
in with ``COPY``. One audit event sums the whole import up (who, the file's
SHA-256, the counts); no row is audited on its own.

Each kind's rules are its intake's: areas, estates and dwellings in
:mod:`anjuka.imports.places`, residents (capacity as found, one current
residence per person) in :mod:`anjuka.imports.residents`.
"""

from __future__ import annotations

import getpass
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from anjuka.audit import operations as audit
from anjuka.core.db import db
from anjuka.core.time import utcnow
from anjuka.core.transactions import checkpoint
from anjuka.imports.formats import IMPORT_KINDS
from anjuka.imports.judging import Intake, Refusal
from anjuka.imports.models import ImportReject, ImportRun
from anjuka.imports.places import AreaIntake, DwellingIntake, EstateIntake
from anjuka.imports.reading import LegacyFile, Row, file_digest
from anjuka.imports.residents import ResidentIntake

DEFAULT_BATCH = 2000


@dataclass
class ImportReport:
    """What one run of an import did."""

    kind: str
    digest: str
    rows: int = 0
    accepted: int = 0
    skipped: int = 0
    rejected: Counter = field(default_factory=Counter)
    admitted_over_capacity: int = 0
    already_done: bool = False

    def summary(self) -> str:
        if self.already_done:
            return f"{self.kind}: this file was imported already (sha256 {self.digest[:12]}…)"
        reasons = ", ".join(f"{code} {n}" for code, n in sorted(self.rejected.items()))
        text = (
            f"{self.kind}: {self.rows} rows read, {self.accepted} imported,"
            f" {sum(self.rejected.values())} rejected"
        )
        if reasons:
            text += f" ({reasons})"
        if self.skipped:
            text += f"; {self.skipped} rows done before, skipped"
        if self.admitted_over_capacity:
            text += f"; {self.admitted_over_capacity} living beyond capacity as found"
        return text


KINDS: dict[str, Callable[[], Intake]] = {
    "areas": AreaIntake,
    "estates": EstateIntake,
    "dwellings": DwellingIntake,
    "residents": ResidentIntake,
}
if set(KINDS) != set(IMPORT_KINDS):  # the formats module lists the kinds the CLI offers
    raise RuntimeError("every kind of import needs its loader")


def run_import(
    kind: str,
    path: Path,
    *,
    operator: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    encoding: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import ``path`` as ``kind``, resuming an earlier run of the same file.

    Commits after every batch (a checkpoint); ``progress(bytes_read, size)``
    is told after each.
    """
    digest = file_digest(path)
    operator = operator or f"cli:{getpass.getuser()}"
    run = db.session.scalar(
        sa.select(ImportRun).where(ImportRun.kind == kind, ImportRun.file_sha256 == digest)
    )
    report = ImportReport(kind, digest)
    if run is not None and run.finished_at is not None:
        report.already_done = True
        return report
    if run is None:
        run = ImportRun(kind=kind, file_sha256=digest, file_name=path.name, operator=operator)
        db.session.add(run)
        checkpoint()
    source = LegacyFile(path, encoding)
    handler = KINDS[kind]()
    for batch, skipped in _batches(source.rows(), run.last_line, batch_size):
        report.skipped += skipped
        if batch:
            _load(handler, batch, run, report)
            checkpoint()
        if progress is not None:
            progress(source.bytes_read, source.size)
    handler.finish()
    run.finished_at = utcnow()
    report.accepted = run.accepted
    report.rejected = Counter(dict(run.rejected or {}))
    audit.record(
        f"import.{kind}",
        chain="system",
        subject_type="import",
        subject_id=run.id,
        actor=("operator", None, operator[:80]),
        details={
            "file_sha256": digest,
            "file_name": path.name,
            "accepted": run.accepted,
            "rejected": dict(run.rejected or {}),
            "admitted_over_capacity": run.admitted_over_capacity,
        },
    )
    checkpoint()
    report.admitted_over_capacity = run.admitted_over_capacity
    return report


def _batches(rows: Iterator[Row], done: int, size: int) -> Iterator[tuple[list[Row], int]]:
    """Batches of the rows after line ``done``, and how many rows before it were passed over."""
    batch: list[Row] = []
    skipped = 0
    for row in rows:
        if row.line <= done:
            skipped += 1
            continue
        batch.append(row)
        if len(batch) >= size:
            yield batch, skipped
            batch, skipped = [], 0
    yield batch, skipped


def _load(handler: Intake, batch: list[Row], run: ImportRun, report: ImportReport) -> None:
    """Judge and insert one batch, with its refusals and the checkpoint (not yet committed)."""
    readable = [r for r in batch if not r.undecodable]
    refusals = [
        Refusal(r.line, "undecodable", None, "Bytes that are not text in the file's encoding.")
        for r in batch
        if r.undecodable
    ]
    before = handler.admitted_over_capacity
    accepted, refused = handler.load(readable)
    refusals += refused
    for refusal in refusals:
        db.session.add(
            ImportReject(
                run_id=run.id,
                line=refusal.line,
                code=refusal.code,
                field=refusal.field,
                message=refusal.message[:300],
            )
        )
    counts = Counter(dict(run.rejected or {}))
    counts.update(r.code for r in refusals)
    run.rejected = dict(counts)
    run.accepted += accepted
    run.admitted_over_capacity += handler.admitted_over_capacity - before
    run.last_line = batch[-1].line
    report.rows += len(batch)


def write_rejects(run_digest: str, kind: str, target: Path) -> int:
    """The rejected rows of an import, as CSV (line, code, field, message): how many."""
    import csv

    run = db.session.scalar(
        sa.select(ImportRun).where(ImportRun.kind == kind, ImportRun.file_sha256 == run_digest)
    )
    if run is None:
        return 0
    count = 0
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("line", "error", "field", "message"))
        for reject in db.session.scalars(
            sa.select(ImportReject).where(ImportReject.run_id == run.id).order_by(ImportReject.line)
        ).yield_per(1000):
            writer.writerow((reject.line, reject.code, reject.field or "", reject.message))
            count += 1
    return count
