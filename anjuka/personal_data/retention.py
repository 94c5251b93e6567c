"""Retention: the identity of residents departed longer than their area's period is removed.

A residence departed more than ``retention_years`` (its dwelling's area
policy, inherited down the tree; 3 years by default) before the registry's
day ``as_of`` is past retention. A person all of whose residences are past
retention (none current, none departed more recently) is anonymised:
document number, blind index, mask, name, phone and birth date are removed
(``Person.anonymise``), and the masked name kept in their inspections'
answers with them. The residences, cards, inspections and transfers stay,
tied to the anonymous row, so occupancy statistics are unchanged; the audit
trail is not touched (it never held those values), so its chains still verify.

The run goes in batches, each committed: interrupted, it is run again and
takes up where it stopped; run twice, the second finds nothing. Each run
leaves one summary event (``retention.run``) on the system chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.areas.operations import effective_policies
from anjuka.audit import operations as audit
from anjuka.core.db import db
from anjuka.dwellings.models import Dwelling
from anjuka.persons.models import Person
from anjuka.residences.models import Residence
from anjuka.verifications.models import Inspection

BATCH = 500


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier (29 February becomes the 28th)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def retention_cutoffs(as_of: date) -> dict[int, date]:
    """Per area id: residences departed before this day are past retention on ``as_of``."""
    areas = db.session.scalars(sa.select(Area)).all()
    return {
        area_id: years_before(as_of, policy.retention_years)
        for area_id, policy in effective_policies(areas).items()
    }


@dataclass(frozen=True)
class RetentionResult:
    """What one run did."""

    as_of: date
    candidates: int
    anonymised: int


def _candidates(loosest_cutoff: date) -> sa.Select:
    """Persons not yet anonymised whose every residence ended before ``loosest_cutoff``.

    A superset of those past retention (each area's cutoff is at or before
    the loosest one); the exact test is :func:`_past_retention`.
    """
    recent = sa.exists().where(
        Residence.person_id == Person.id,
        sa.or_(Residence.departed_on.is_(None), Residence.departed_on >= loosest_cutoff),
    )
    any_residence = sa.exists().where(Residence.person_id == Person.id)
    return sa.select(Person.id).where(Person.anonymised_on.is_(None), any_residence, ~recent)


def _past_retention(person_ids: list[int], cutoffs: dict[int, date]) -> list[int]:
    """Those of ``person_ids`` whose every residence is past its own area's retention."""
    rows = db.session.execute(
        sa.select(Residence.person_id, Residence.departed_on, Dwelling.area_id)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Residence.person_id.in_(person_ids))
    ).all()
    kept = {
        person_id
        for person_id, departed_on, area_id in rows
        if departed_on is None or departed_on >= cutoffs[area_id]
    }
    return [person_id for person_id in person_ids if person_id not in kept]


def _scrub_inspections(person_ids: list[int]) -> None:
    """Drop the masked name an inspection's stored answer showed of these persons."""
    for inspection in db.session.scalars(
        sa.select(Inspection).where(Inspection.person_id.in_(person_ids))
    ):
        resident = (inspection.answer or {}).get("resident")
        if isinstance(resident, dict) and resident.get("name") is not None:
            inspection.answer = {**inspection.answer, "resident": {**resident, "name": None}}


def run_retention(
    as_of: date,
    *,
    batch: int = BATCH,
    operator: str | None = None,
    started: Callable[[int], None] | None = None,
    advanced: Callable[[int], None] | None = None,
) -> RetentionResult:
    """Anonymise every person past retention on ``as_of``; commits batch by batch.

    ``started(total)`` is told how many persons will be examined,
    ``advanced(n)`` each batch's size (for a progress bar). ``operator``
    names who ran it in the audit trail.
    """
    cutoffs = retention_cutoffs(as_of)
    loosest = max(cutoffs.values()) if cutoffs else as_of
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(_candidates(loosest).subquery())
    )
    if started is not None:
        started(total or 0)
    anonymised = 0
    last_id = 0
    while True:
        query = _candidates(loosest).where(Person.id > last_id).order_by(Person.id).limit(batch)
        ids = list(db.session.scalars(query))
        if not ids:
            break
        last_id = ids[-1]
        # Locked, then judged: an arrival of one of them that committed meanwhile is seen.
        locked = db.session.scalars(
            sa.select(Person)
            .where(Person.id.in_(ids), Person.anonymised_on.is_(None))
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
        due = set(_past_retention([p.id for p in locked], cutoffs))
        for person in locked:
            if person.id in due:
                person.anonymise(as_of)
        _scrub_inspections(sorted(due))
        db.session.flush()
        db.session.commit()
        anonymised += len(due)
        if advanced is not None:
            advanced(len(ids))
    audit.record(
        "retention.run",
        subject_type="retention",
        chain="system",
        actor=("operator", None, operator[:80]) if operator else None,
        details={
            "as_of": as_of.isoformat(),
            "examined": total or 0,
            "anonymised": anonymised,
        },
    )
    db.session.commit()
    return RetentionResult(as_of=as_of, candidates=total or 0, anonymised=anonymised)
