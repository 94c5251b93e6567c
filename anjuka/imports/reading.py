"""Reading a legacy CSV file: its encoding, its rows, how far through it we are.

Legacy registries export UTF-8 as often as GB 18030, and their clerks type
full-width digits: the encoding is told from the first bytes, and every cell
is NFKC-normalised (full-width letters and digits become ASCII), as the API
normalises document numbers. A row with bytes that are not text in the
file's encoding is reported, not guessed at.
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: Bytes read to tell the encoding.
_SNIFF = 1 << 16


def file_digest(path: Path) -> str:
    """SHA-256 of the file (an import is identified, and resumed, by it)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` when the file's start is UTF-8 (BOM or not), else ``gb18030``."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF)
    # A multi-byte character may be cut at the end of the sample.
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return "utf-8-sig"
    return "gb18030"


@dataclass(frozen=True)
class Row:
    """One record of the file: its line number (the header is line 1) and its cells."""

    line: int
    cells: dict[str, str]
    undecodable: bool = False


class _Counting(io.RawIOBase):
    """A binary file that tells how many bytes have been read (for the progress bar)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


class LegacyFile:
    """The rows of one legacy CSV file, streamed (memory does not grow with the file)."""

    def __init__(self, path: Path, encoding: str | None = None) -> None:
        self.path = path
        self.encoding = encoding or detect_encoding(path)
        self.size = path.stat().st_size
        self._counter: _Counting | None = None

    @property
    def bytes_read(self) -> int:
        return self._counter.position if self._counter is not None else 0

    def rows(self) -> Iterator[Row]:
        """Every record after the header, with its cells normalised (NFKC, stripped)."""
        with self.path.open("rb") as raw:
            self._counter = _Counting(raw)
            text = io.TextIOWrapper(
                io.BufferedReader(self._counter, 1 << 16),
                encoding=self.encoding,
                errors="surrogateescape",
                newline="",
            )
            reader = csv.reader(text)
            header = [_clean(h) for h in next(reader, [])]
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                undecodable = _has_surrogates("".join(record))
                cells = {
                    name: _clean(value)
                    for name, value in zip(header, record, strict=False)
                    if not undecodable
                }
                yield Row(line, cells, undecodable)


def _has_surrogates(text: str) -> bool:
    """Whether undecodable bytes were kept as lone surrogates (only they fail to encode)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _clean(value: str) -> str:
    # ASCII is NFKC already: only the rest (full-width digits …) needs normalising.
    return (value if value.isascii() else unicodedata.normalize("NFKC", value)).strip()
