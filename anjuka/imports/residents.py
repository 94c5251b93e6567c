"""Residents from a legacy file: each row judged as the desk judges an arrival.

Capacity is counted the way the desk counts it and a person lives at one
dwelling at a time. Residents living, as found, beyond what their dwelling
may hold are registered as a supervisor's override would register them
("over capacity as found"), and the dwelling raises its over-occupancy alert
when the import ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.areas.operations import Policy, effective_policies
from anjuka.core.db import db
from anjuka.core.errors import AppError
from anjuka.core.privacy import mask
from anjuka.core.protect import blind_index, encrypt
from anjuka.core.time import add_working_days, local_today, utcnow
from anjuka.dwellings.models import Dwelling, DwellingStatus
from anjuka.dwellings.operations import Occupancy, compute_capacity, occupancies
from anjuka.imports.bulk import copy_rows, next_ids, on_postgresql
from anjuka.imports.judging import (
    Intake,
    Refusal,
    RowRefused,
    SchemaLoader,
    day,
    optional,
    required,
)
from anjuka.imports.reading import Row
from anjuka.persons.identity import ParsedDocument, mask_document, parse_document
from anjuka.persons.models import DOCUMENT_PURPOSE, PHONE_PURPOSE, Person
from anjuka.residences.models import Residence
from anjuka.residences.operations import is_minor
from anjuka.residences.schemas import PersonInputSchema

OVER_CAPACITY_AS_FOUND = "legacy import: living here beyond capacity as found"


@dataclass
class Judged:
    """A resident's row that passed every rule, ready to go in."""

    row: Row
    document: ParsedDocument
    cells: dict[str, Any]
    dwelling: Dwelling
    arrived_on: date
    departed_on: date | None
    index: str
    override: str | None = None
    minor: bool = False


class ResidentIntake(Intake):
    kind = "residents"

    person_columns = (
        "id",
        "document_type",
        "document_number_enc",
        "document_index",
        "document_masked",
        "name",
        "sex",
        "birth_date",
        "phone_enc",
        "phone_masked",
        "origin",
        "created_at",
    )

    def __init__(self) -> None:
        super().__init__()
        self.schema = SchemaLoader(PersonInputSchema())
        self.policies: dict[int, Policy] = {}
        #: Deadlines by arrival day and working days allowed (a few thousand at most).
        self.deadlines: dict[tuple[date, int], date] = {}
        #: The dwellings found over capacity (their alerts are raised at the end).
        self.crowded: set[int] = set()

    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        refusals: list[Refusal] = []
        today = local_today()
        dwellings = {
            d.address_code: d
            for d in db.session.scalars(
                sa.select(Dwelling).where(
                    Dwelling.address_code.in_({r.cells.get("address_code") for r in rows} - {None})
                )
            )
            if d.address_code is not None
        }
        # The policies by area id: no lazy load of a dwelling's area per row.
        missing = {d.area_id for d in dwellings.values()} - set(self.policies)
        if missing:
            effective_policies(
                db.session.scalars(sa.select(Area).where(Area.id.in_(missing))),
                cache=self.policies,
            )
        judged: list[Judged] = []
        for row in rows:
            try:
                judged.append(self._judge(row, dwellings, today))
            except RowRefused as refused:
                refusals.append(Refusal(row.line, refused.code, refused.field, refused.message))
        persons = self._persons(judged)
        living = self._living_now({persons[j.index] for j in judged if j.index in persons})
        counted = occupancies(list({j.dwelling.id for j in judged if j.departed_on is None}))
        taken: list[Judged] = []
        for item in judged:
            person_id = persons.get(item.index)
            if item.departed_on is None:
                if person_id is not None and person_id in living:
                    refusals.append(
                        Refusal(
                            item.row.line,
                            "already_registered",
                            "document_number",
                            "This person is registered at another dwelling.",
                        )
                    )
                    continue
                self._count(item, counted)
                if person_id is not None:
                    living.add(person_id)
            taken.append(item)
        self._insert(taken, persons)
        return len(taken), refusals

    def _judge(self, row: Row, dwellings: dict[str, Dwelling], today: date) -> Judged:
        required(row, self.kind)
        cells = row.cells
        person = self.schema.load(
            {
                "document_type": cells["document_type"],
                "document_number": cells["document_number"],
                "name": cells["name"],
                "phone": optional(cells, "phone"),
                "origin": optional(cells, "origin"),
                "sex": optional(cells, "sex"),
                "birth_date": optional(cells, "birth_date"),
            },
        )
        try:
            document = parse_document(
                person["document_type"], person["document_number"], today=today
            )
        except AppError as exc:
            raise RowRefused(exc.code, exc.message, "document_number") from None
        arrived_on = day(cells["arrived_on"], "arrived_on")
        departed_on = day(optional(cells, "departed_on"), "departed_on")
        if arrived_on is None:  # a required column, checked above; kept for the type checker
            raise RowRefused("missing_value", "arrived_on is empty.", "arrived_on")
        if arrived_on > today:
            raise RowRefused("arrival_in_future", "The arrival is in the future.", "arrived_on")
        if departed_on is not None and (departed_on < arrived_on or departed_on > today):
            raise RowRefused(
                "validation_error",
                "The departure is before the arrival or in the future.",
                "departed_on",
            )
        dwelling = dwellings.get(cells["address_code"])
        if dwelling is None:
            raise RowRefused(
                "dwelling_not_found", "No dwelling with this address code.", "address_code"
            )
        index = blind_index(f"{document.document_type}:{document.number}", DOCUMENT_PURPOSE)
        birth = document.birth_date or person.get("birth_date")
        return Judged(
            row,
            document,
            person,
            dwelling,
            arrived_on,
            departed_on,
            index,
            minor=is_minor(birth, arrived_on),
        )

    def _count(self, item: Judged, counted: dict[int, Occupancy]) -> None:
        """Count a current resident in; beyond capacity, admitted as found (see the module)."""
        dwelling = item.dwelling
        policy: Policy = self.policies[dwelling.area_id]
        capacity = compute_capacity(dwelling, policy)
        occupancy = counted.get(dwelling.id, Occupancy())
        counts = policy.minors_count or not item.minor
        over = dwelling.status != DwellingStatus.RENTABLE or (
            counts
            and (
                occupancy.counted(policy.minors_count) + 1 > capacity.area_limit
                or occupancy.room_counted(policy.minors_count) + 1 > capacity.room_limit
            )
        )
        if over:
            item.override = OVER_CAPACITY_AS_FOUND
            self.admitted_over_capacity += 1
            self.crowded.add(dwelling.id)
        counted[dwelling.id] = Occupancy(
            occupancy.occupants + 1,
            occupancy.minors + int(item.minor),
            occupancy.family,
            occupancy.minor_family,
        )

    def _persons(self, judged: list[Judged]) -> dict[str, int]:
        """Person ids by blind index: the known ones, and the new ones created now."""
        indexes = {j.index for j in judged}
        known = dict(
            db.session.execute(
                sa.select(Person.document_index, Person.id).where(
                    Person.document_index.in_(indexes)
                )
            ).all()
        )
        new: dict[str, dict[str, Any]] = {}
        now = utcnow()
        for item in judged:
            if item.index in known or item.index in new:
                continue
            number, phone = item.document.number, item.cells.get("phone")
            binding = f"persons:{item.index}"
            new[item.index] = {
                "document_type": item.document.document_type,
                "document_number_enc": encrypt(number, DOCUMENT_PURPOSE, binding),
                "document_index": item.index,
                "document_masked": mask_document(number),
                "name": item.cells["name"],
                "sex": item.document.sex or item.cells.get("sex"),
                "birth_date": item.document.birth_date or item.cells.get("birth_date"),
                "phone_enc": encrypt(phone, PHONE_PURPOSE, binding) if phone else None,
                "phone_masked": mask(phone, start=1, end=4) if phone else None,
                "origin": item.cells.get("origin"),
                "created_at": now,
            }
        if new and on_postgresql():
            ids = next_ids(Person.__tablename__, len(new))
            for person_id, values in zip(ids, new.values(), strict=True):
                values["id"] = person_id
            copy_rows(
                Person.__tablename__,
                self.person_columns,
                ([values[name] for name in self.person_columns] for values in new.values()),
            )
            known.update(zip(new, ids, strict=True))
        elif new:
            rows = db.session.execute(
                sa.insert(Person).returning(Person.document_index, Person.id), list(new.values())
            ).all()
            known.update(dict(rows))
        return known

    def _living_now(self, person_ids: set[int]) -> set[int]:
        if not person_ids:
            return set()
        return set(
            db.session.scalars(
                sa.select(Residence.person_id).where(
                    Residence.person_id.in_(person_ids), Residence.departed_on.is_(None)
                )
            )
        )

    def _insert(self, taken: list[Judged], persons: dict[str, int]) -> None:
        """The residences of a batch: COPY on PostgreSQL, a multi-row insert elsewhere."""
        now = utcnow()
        columns = (
            "person_id",
            "dwelling_id",
            "arrived_on",
            "departed_on",
            "registered_at",
            "registration_deadline",
            "late",
            "minor",
            "override_reason",
            "departure_registered_at",
        )
        rows = []
        for item in taken:
            days = self.policies[item.dwelling.area_id].registration_deadline_days
            deadline = self.deadlines.get((item.arrived_on, days))
            if deadline is None:
                deadline = self.deadlines[(item.arrived_on, days)] = add_working_days(
                    item.arrived_on, days
                )
            rows.append(
                (
                    persons[item.index],
                    item.dwelling.id,
                    item.arrived_on,
                    item.departed_on,
                    now,
                    deadline,
                    False,
                    item.minor,
                    item.override,
                    now if item.departed_on is not None else None,
                )
            )
        if not rows:
            return
        if on_postgresql():
            copy_rows(Residence.__tablename__, columns, rows)
        else:
            db.session.execute(
                sa.insert(Residence), [dict(zip(columns, r, strict=True)) for r in rows]
            )

    def finish(self) -> None:
        from anjuka.alerts import occupancy
        from anjuka.stats.operations import rebuild

        crowded = sorted(self.crowded)
        for start in range(0, len(crowded), 500):
            batch = db.session.scalars(
                sa.select(Dwelling).where(Dwelling.id.in_(crowded[start : start + 500]))
            ).all()
            occupancy.evaluate(batch, trigger="import")
        rebuild()
