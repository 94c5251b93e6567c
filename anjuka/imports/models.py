"""An import's progress (to resume it) and the rows it refused (to report them)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime
from anjuka.core.time import utcnow


class ImportRun(Model):
    """One file imported as one kind: identified by its SHA-256, resumed after ``last_line``."""

    __tablename__ = "import_runs"
    __table_args__ = (sa.UniqueConstraint("kind", "file_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    file_sha256: Mapped[str] = mapped_column(sa.String(64))
    file_name: Mapped[str] = mapped_column(sa.String(255))
    operator: Mapped[str] = mapped_column(sa.String(80))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The last line of the file whose batch committed.
    last_line: Mapped[int] = mapped_column(default=1)
    accepted: Mapped[int] = mapped_column(default=0)
    admitted_over_capacity: Mapped[int] = mapped_column(default=0)
    #: Refused rows by reason code.
    rejected: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class ImportReject(Model):
    """A row an import refused: where, and why (never the row's values: they are personal)."""

    __tablename__ = "import_rejects"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("import_runs.id"), index=True)
    line: Mapped[int]
    code: Mapped[str] = mapped_column(sa.String(40))
    field: Mapped[str | None] = mapped_column(sa.String(64))
    message: Mapped[str] = mapped_column(sa.String(300))
