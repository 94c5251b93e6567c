"""Persons (流动人口) and their identity documents."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime
from anjuka.core.privacy import mask_phone
from anjuka.core.protect import decrypt, encrypt
from anjuka.core.time import utcnow

#: Associated data of each encrypted column (the "purpose").
DOCUMENT_PURPOSE = "person.document_number"
PHONE_PURPOSE = "person.phone"

DOCUMENT_TYPES = (
    "resident_id",
    "passport",
    "hk_macao_permit",
    "taiwan_permit",
    "foreign_permanent_id",
)


class Person(Model):
    """A resident. The document number is never stored in clear."""

    __tablename__ = "persons"
    __table_args__ = (sa.CheckConstraint("sex IS NULL OR sex IN ('F', 'M')", name="sex_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_type: Mapped[str] = mapped_column(sa.String(32))
    #: AES-GCM ciphertext bound to this row (see anjuka.core.protect); empty once anonymised.
    document_number_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    #: Keyed blind index of type and number: the only way to find a person by document.
    #: Once anonymised, ``anonymised:<id>``, which no document's index can equal.
    document_index: Mapped[str] = mapped_column(sa.String(80), unique=True)
    #: What every response shows: first and last characters only (empty once anonymised).
    document_masked: Mapped[str] = mapped_column(sa.String(40))
    #: Empty once anonymised.
    name: Mapped[str] = mapped_column(sa.String(200))
    sex: Mapped[str | None] = mapped_column(sa.String(1))
    birth_date: Mapped[date | None]
    #: AES-GCM ciphertext bound to this row; read and set through ``phone``.
    phone_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    phone_masked: Mapped[str | None] = mapped_column(sa.String(32))
    origin: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The registry day its identity was removed (``anjuka retention run``), if it was.
    anonymised_on: Mapped[date | None]

    @property
    def binding(self) -> str:
        """What ties this row's ciphertexts to it (the blind index is unique and set first)."""
        return f"persons:{self.document_index}"

    @property
    def document_number(self) -> str | None:
        """The document number in clear: only for a reveal (audited) or a re-encryption.

        None once the person was anonymised.
        """
        if self.anonymised_on is not None:
            return None
        return decrypt(self.document_number_enc, DOCUMENT_PURPOSE, self.binding)

    def anonymise(self, on: date) -> None:
        """Remove what identifies this person: document, blind index, name, phone, birth date.

        The columns that must hold something hold nothing personal: no
        ciphertext, an index derived from the row's id alone, empty strings.
        Sex and origin stay (statistics by sex and province); the residences,
        cards and inspections stay, tied to an anonymous row.
        """
        self.document_number_enc = b""
        self.document_index = f"anonymised:{self.id}"
        self.document_masked = ""
        self.name = ""
        self.phone_enc = None
        self.phone_masked = None
        self.birth_date = None
        self.anonymised_on = on

    @property
    def phone(self) -> str | None:
        """The phone in clear (decrypted when read)."""
        if self.phone_enc is None:
            return None
        return decrypt(self.phone_enc, PHONE_PURPOSE, self.binding)

    @phone.setter
    def phone(self, value: str | None) -> None:
        self.phone_enc = encrypt(value, PHONE_PURPOSE, self.binding) if value else None
        self.phone_masked = mask_phone(value) if value else None

    def seal(self, document_number: str, phone: str | None) -> None:
        """(Re)write this row's ciphertexts under the active key, bound to the row."""
        self.document_number_enc = encrypt(document_number, DOCUMENT_PURPOSE, self.binding)
        self.phone = phone
