"""Areas: city > district > police-station jurisdiction > community."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.core.db import Model

AREA_BASES = ("building", "usable")

#: The policy fields an area may set; children inherit what they leave unset.
POLICY_FIELDS = (
    "min_area_per_person_m2",
    "area_basis",
    "max_persons_per_room",
    "minors_count",
    "family_exception",
    "registration_deadline_days",
    "card_return_grace_days",
    "card_validity_days",
    "retention_years",
)


class Area(Model):
    """A node of the area tree, holding the policy fields it overrides."""

    __tablename__ = "areas"
    __table_args__ = (
        sa.CheckConstraint("min_area_per_person_m2 > 0", name="min_area_positive"),
        sa.CheckConstraint("area_basis IN ('building', 'usable')", name="area_basis_known"),
        sa.CheckConstraint("max_persons_per_room >= 1", name="persons_per_room_positive"),
        sa.CheckConstraint("registration_deadline_days >= 0", name="deadline_not_negative"),
        sa.CheckConstraint("card_return_grace_days >= 0", name="grace_not_negative"),
        sa.CheckConstraint("card_validity_days >= 1", name="validity_positive"),
        sa.CheckConstraint("retention_years >= 1", name="retention_positive"),
        sa.CheckConstraint("code <> ''", name="code_not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    #: Materialised path of codes, "/3302/330203/", so a subtree is one prefix match.
    path: Mapped[str] = mapped_column(sa.String(600), index=True)

    min_area_per_person_m2: Mapped[Decimal | None] = mapped_column(sa.Numeric(6, 2))
    area_basis: Mapped[str | None] = mapped_column(sa.String(16))
    max_persons_per_room: Mapped[int | None]
    minors_count: Mapped[bool | None]
    family_exception: Mapped[bool | None]
    registration_deadline_days: Mapped[int | None]
    card_return_grace_days: Mapped[int | None]
    card_validity_days: Mapped[int | None]
    #: Whole years after a departure before the residence's person is anonymised.
    retention_years: Mapped[int | None]

    parent: Mapped[Area | None] = relationship(remote_side=[id])

    @property
    def ancestor_codes(self) -> list[str]:
        """Codes from the root down to this area, inclusive."""
        return [code for code in self.path.split("/") if code]

    def own_policy(self) -> dict:
        """The policy fields this area sets itself."""
        return {
            name: getattr(self, name) for name in POLICY_FIELDS if getattr(self, name) is not None
        }
