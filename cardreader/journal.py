"""A small file remembering the job in hand, so a restarted daemon resumes it.

It holds the job id, its phase, the card's UID and, once the card work is
done, the result still to report (which for an issue carries the record read
back: signed, public data). Never keys.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Journal:
    """One JSON file, replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The entry left by the last run, or None."""
        try:
            with self.path.open(encoding="utf-8") as handle:
                entry = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable journal %s: %s", self.path, exc)
            return None
        return entry if isinstance(entry, dict) and "job_id" in entry else None

    def save(self, entry: dict[str, Any]) -> None:
        """Write ``entry`` durably (fsync, then rename over the old file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Forget the job: it is reported."""
        self.path.unlink(missing_ok=True)
