"""Areas, estates and dwellings from legacy files, judged by the API's schemas."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.areas.schemas import AreaCreateSchema
from anjuka.core.db import db
from anjuka.core.privacy import mask
from anjuka.core.protect import encrypt
from anjuka.core.time import utcnow
from anjuka.dwellings.models import LANDLORD_PHONE_PURPOSE, Dwelling, DwellingStatus, Estate
from anjuka.dwellings.schemas import DwellingCreateSchema, EstateCreateSchema
from anjuka.imports.bulk import copy_rows, next_ids, on_postgresql
from anjuka.imports.judging import (
    Intake,
    Refusal,
    RowRefused,
    SchemaLoader,
    decimal_float,
    flag,
    number,
    optional,
    required,
    schema_load,
)
from anjuka.imports.reading import Row


class AreaIntake(Intake):
    kind = "areas"

    def __init__(self) -> None:
        super().__init__()
        self.schema = AreaCreateSchema()

    _policy = (
        ("min_area_per_person_m2", Decimal),
        ("area_basis", str),
        ("max_persons_per_room", int),
        ("minors_count", bool),
        ("registration_deadline_days", int),
        ("card_return_grace_days", int),
        ("card_validity_days", int),
    )

    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        refusals, accepted = [], 0
        codes = {r.cells.get("code") for r in rows} | {r.cells.get("parent_code") for r in rows}
        known = {
            a.code: a
            for a in db.session.scalars(sa.select(Area).where(Area.code.in_(codes - {None})))
        }
        for row in rows:
            try:
                required(row, self.kind)
                cells = row.cells
                policy: dict[str, Any] = {}
                for name, kind in self._policy:
                    value = optional(cells, name)
                    if value is None:
                        continue
                    if kind is bool:
                        policy[name] = flag(value, name)
                    elif kind is str:
                        policy[name] = value
                    else:
                        policy[name] = number(value, name, kind)
                body = {
                    "code": cells["code"],
                    "name": cells["name"],
                    "policy": {
                        k: float(v) if isinstance(v, Decimal) else v for k, v in policy.items()
                    },
                }
                if optional(cells, "parent_code"):
                    body["parent_code"] = cells["parent_code"]
                loaded = schema_load(self.schema, body)
                if loaded["code"] in known:
                    raise RowRefused("area_exists", "An area with this code exists.", "code")
                parent = known.get(loaded.get("parent_code") or "")
                if loaded.get("parent_code") and parent is None:
                    raise RowRefused("unknown_parent", "No such parent area.", "parent_code")
                area = Area(
                    code=loaded["code"],
                    name=loaded["name"],
                    parent=parent,
                    path=f"{parent.path if parent else '/'}{loaded['code']}/",
                    **loaded["policy"],
                )
                db.session.add(area)
                known[area.code] = area
                accepted += 1
            except RowRefused as refused:
                refusals.append(Refusal(row.line, refused.code, refused.field, refused.message))
        db.session.flush()
        return accepted, refusals


class EstateIntake(Intake):
    kind = "estates"

    def __init__(self) -> None:
        super().__init__()
        self.schema = EstateCreateSchema()

    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        refusals, accepted = [], 0
        areas = areas_by_code({r.cells.get("area_code") for r in rows})
        codes = {r.cells.get("estate_code") for r in rows} - {None, ""}
        taken = set(db.session.scalars(sa.select(Estate.code).where(Estate.code.in_(codes))))
        for row in rows:
            try:
                required(row, self.kind)
                cells = row.cells
                loaded = schema_load(
                    self.schema,
                    {
                        "area_code": cells["area_code"],
                        "name": cells["name"],
                        "address": optional(cells, "address"),
                        "property_company": optional(cells, "property_company"),
                    },
                )
                code = cells["estate_code"]
                if len(code) > 32:
                    raise RowRefused(
                        "validation_error", "Longer than 32 characters.", "estate_code"
                    )
                if code in taken:
                    raise RowRefused(
                        "estate_exists", "An estate with this code exists.", "estate_code"
                    )
                area = areas.get(loaded["area_code"])
                if area is None:
                    raise RowRefused("area_not_found", "No such area.", "area_code")
                db.session.add(
                    Estate(
                        code=code,
                        area_id=area.id,
                        name=loaded["name"],
                        address=loaded.get("address"),
                        property_company=loaded.get("property_company"),
                    )
                )
                taken.add(code)
                accepted += 1
            except RowRefused as refused:
                refusals.append(Refusal(row.line, refused.code, refused.field, refused.message))
        db.session.flush()
        return accepted, refusals


def areas_by_code(codes: Iterable[str | None]) -> dict[str, Area]:
    wanted = {c for c in codes if c}
    return {a.code: a for a in db.session.scalars(sa.select(Area).where(Area.code.in_(wanted)))}


class DwellingIntake(Intake):
    kind = "dwellings"
    columns = (
        "id",
        "area_id",
        "estate_id",
        "address",
        "address_code",
        "landlord_name",
        "landlord_phone_enc",
        "landlord_phone_masked",
        "building_area_m2",
        "usable_area_m2",
        "rooms",
        "status",
        "created_at",
    )

    def __init__(self) -> None:
        super().__init__()
        self.schema = SchemaLoader(DwellingCreateSchema())

    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        refusals: list[Refusal] = []
        areas = areas_by_code({r.cells.get("area_code") for r in rows})
        estate_codes = {r.cells.get("estate_code") for r in rows} - {None, ""}
        estates = {
            e.code: (e, e.area)
            for e in db.session.scalars(sa.select(Estate).where(Estate.code.in_(estate_codes)))
        }
        address_codes = {r.cells.get("address_code") for r in rows} - {None, ""}
        taken = set(
            db.session.scalars(
                sa.select(Dwelling.address_code).where(Dwelling.address_code.in_(address_codes))
            )
        )
        values, phones = [], []
        now = utcnow()
        for row in rows:
            try:
                required(row, self.kind)
                cells = row.cells
                loaded = self.schema.load(
                    {
                        "area_code": cells["area_code"],
                        "address": cells["address"],
                        "address_code": cells["address_code"],
                        "landlord_name": optional(cells, "landlord_name"),
                        "landlord_phone": optional(cells, "landlord_phone"),
                        "building_area_m2": decimal_float(cells, "building_area_m2"),
                        "usable_area_m2": decimal_float(cells, "usable_area_m2"),
                        "rooms": number(cells["rooms"], "rooms"),
                        "status": optional(cells, "status") or DwellingStatus.RENTABLE.value,
                    },
                )
                if loaded.get("building_area_m2") is None and loaded.get("usable_area_m2") is None:
                    raise RowRefused("validation_error", "No area given.", "usable_area_m2")
                if loaded["address_code"] in taken:
                    raise RowRefused(
                        "dwelling_exists", "This address code is taken.", "address_code"
                    )
                area = areas.get(loaded["area_code"])
                if area is None:
                    raise RowRefused("area_not_found", "No such area.", "area_code")
                estate_id = None
                if optional(cells, "estate_code"):
                    found = estates.get(cells["estate_code"])
                    if found is None:
                        raise RowRefused("estate_not_found", "No such estate.", "estate_code")
                    estate, estate_area = found
                    if not area.path.startswith(estate_area.path):
                        raise RowRefused(
                            "validation_error", "The area is outside the estate's.", "area_code"
                        )
                    estate_id = estate.id
                taken.add(loaded["address_code"])
                values.append(
                    {
                        "area_id": area.id,
                        "estate_id": estate_id,
                        "address": loaded["address"],
                        "address_code": loaded["address_code"],
                        "landlord_name": loaded.get("landlord_name"),
                        "building_area_m2": loaded.get("building_area_m2"),
                        "usable_area_m2": loaded.get("usable_area_m2"),
                        "rooms": loaded["rooms"],
                        "status": str(loaded["status"]),
                        "created_at": now,
                    }
                )
                phones.append(loaded.get("landlord_phone"))
            except RowRefused as refused:
                refusals.append(Refusal(row.line, refused.code, refused.field, refused.message))
        if values and on_postgresql():
            self._copy(values, phones)
        elif values:
            ids = db.session.scalars(
                sa.insert(Dwelling).returning(Dwelling.id, sort_by_parameter_order=True), values
            ).all()
            sealed = [
                {
                    "b_id": dwelling_id,
                    "enc": encrypt(phone, LANDLORD_PHONE_PURPOSE, f"dwellings:{dwelling_id}"),
                    "masked": mask(phone, start=1, end=4),
                }
                for dwelling_id, phone in zip(ids, phones, strict=True)
                if phone
            ]
            if sealed:
                table = Dwelling.metadata.tables[Dwelling.__tablename__]
                db.session.execute(
                    table.update()
                    .where(table.c.id == sa.bindparam("b_id"))
                    .values(
                        landlord_phone_enc=sa.bindparam("enc"),
                        landlord_phone_masked=sa.bindparam("masked"),
                    ),
                    sealed,
                )
        return len(values), refusals

    def _copy(self, values: list[dict[str, Any]], phones: list[str | None]) -> None:
        """PostgreSQL: ids drawn first, so that phones are sealed to their rows before COPY."""
        ids = next_ids(Dwelling.__tablename__, len(values))
        for dwelling_id, value, phone in zip(ids, values, phones, strict=True):
            value["id"] = dwelling_id
            if phone:
                value["landlord_phone_enc"] = encrypt(
                    phone, LANDLORD_PHONE_PURPOSE, f"dwellings:{dwelling_id}"
                )
                value["landlord_phone_masked"] = mask(phone, start=1, end=4)
        copy_rows(
            Dwelling.__tablename__,
            self.columns,
            ([value.get(name) for name in self.columns] for value in values),
        )

    def finish(self) -> None:
        from anjuka.stats.operations import rebuild

        rebuild()
