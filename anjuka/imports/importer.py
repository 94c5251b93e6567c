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

Residents living, as found, beyond what their dwelling may hold are
registered as a supervisor's override would register them ("over capacity
as found") and the dwelling raises its over-occupancy alert: the registry
records who lives where, and the crowding is for the supervisors to act on.
"""

from __future__ import annotations

import abc
import getpass
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import marshmallow as ma
import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.areas.operations import Policy, effective_policies
from anjuka.areas.schemas import AreaCreateSchema
from anjuka.audit import operations as audit
from anjuka.core.db import db
from anjuka.core.errors import AppError
from anjuka.core.privacy import mask
from anjuka.core.protect import blind_index, encrypt
from anjuka.core.time import add_working_days, local_today, utcnow
from anjuka.core.transactions import checkpoint
from anjuka.dwellings.models import LANDLORD_PHONE_PURPOSE, Dwelling, DwellingStatus, Estate
from anjuka.dwellings.operations import Occupancy, compute_capacity, occupancies
from anjuka.dwellings.schemas import DwellingCreateSchema, EstateCreateSchema
from anjuka.imports.formats import IMPORT_KINDS, REQUIRED
from anjuka.imports.models import ImportReject, ImportRun
from anjuka.imports.reading import LegacyFile, Row, file_digest
from anjuka.persons.identity import ParsedDocument, mask_document, parse_document
from anjuka.persons.models import DOCUMENT_PURPOSE, PHONE_PURPOSE, Person
from anjuka.residences.models import Residence
from anjuka.residences.operations import is_minor
from anjuka.residences.schemas import PersonInputSchema

OVER_CAPACITY_AS_FOUND = "legacy import: living here beyond capacity as found"
DEFAULT_BATCH = 2000


@dataclass
class Refusal:
    """A row the import did not take, and why."""

    line: int
    code: str
    field: str | None = None
    message: str = ""


class RowRefused(Exception):
    """Raised while judging one row; becomes a :class:`Refusal`."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


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


def _required(row: Row, kind: str) -> None:
    for name in REQUIRED.get(kind, ()):
        if not row.cells.get(name):
            raise RowRefused("missing_value", f"{name} is empty.", name)


def _optional(cells: dict[str, str], name: str) -> str | None:
    value = cells.get(name)
    return value if value else None


def _schema_load(schema: ma.Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Load ``data`` with the API's schema; the first field error refuses the row."""
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        name, problems = next(iter(exc.normalized_messages().items()))
        message = problems[0] if isinstance(problems, list) else str(problems)
        if isinstance(problems, dict):  # nested (a policy field)
            inner, texts = next(iter(problems.items()))
            name, message = f"{name}.{inner}", texts[0]
        raise RowRefused("validation_error", str(message), str(name)) from None


class _Loader:
    """An API schema's load, without its per-load machinery, for the rows that pass.

    Each field deserialises its cell as ``schema.load`` would have it do (a
    text cell of a ``String`` field is kept as it is once the field's own
    validators accept it); a row that any field refuses, or that lacks a
    field that is required or has a default, goes through ``schema.load`` itself,
    so the rows refused and their messages are the schema's own. Only for
    schemas without hooks or renamed fields, which this would skip.
    """

    def __init__(self, schema: ma.Schema) -> None:
        hooks = any(schema._hooks.values())  # noqa: SLF001 - a hook would be skipped
        renamed = any(f.data_key or f.attribute for f in schema.fields.values())
        if hooks or renamed:
            raise ValueError(f"{type(schema).__name__} has hooks or renamed fields")
        self.schema = schema
        self.names = set(schema.fields)
        #: Fields a row may leave out: absent from the load's result too.
        self.omissible = {
            name
            for name, f in schema.fields.items()
            if not f.required and f.load_default is ma.missing
        }
        self.text = {
            name: tuple(f.validators)
            for name, f in schema.fields.items()
            if type(f) is ma.fields.String
        }

    def load(self, data: dict[str, Any]) -> dict[str, Any]:
        given = data.keys()
        if not given <= self.names or not self.names - given <= self.omissible:
            return _schema_load(self.schema, data)
        loaded: dict[str, Any] = {}
        fields = self.schema.fields
        try:
            for name, value in data.items():
                validators = self.text.get(name)
                if validators is not None and isinstance(value, str):
                    for validator in validators:
                        validator(value)
                    loaded[name] = value
                else:
                    loaded[name] = fields[name].deserialize(value, name, data)
        except ma.ValidationError:
            return _schema_load(self.schema, data)
        return loaded


def _number(value: str | None, name: str, kind: type = int) -> Any:
    if value is None:
        return None
    try:
        return kind(value) if kind is int else Decimal(value)
    except (ValueError, InvalidOperation):
        raise RowRefused("validation_error", f"{name} is not a number.", name) from None


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    truth = {
        "true": True,
        "1": True,
        "yes": True,
        "是": True,
        "false": False,
        "0": False,
        "no": False,
        "否": False,
    }
    if value.lower() not in truth:
        raise RowRefused("validation_error", f"{name} is not true or false.", name)
    return truth[value.lower()]


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowRefused("validation_error", f"{name} is not a date (YYYY-MM-DD).", name) from None


def _on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _next_ids(table: str, count: int) -> list[int]:
    """``count`` new ids from ``table``'s sequence, in one statement (PostgreSQL)."""
    return list(
        db.session.scalars(
            sa.text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table, "n": count},
        )
    )


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``COPY`` the rows into ``table`` in the session's transaction (PostgreSQL)."""
    raw = db.session.connection().connection.driver_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"  # noqa: S608 - fixed names
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


class _Kind(abc.ABC):
    """How one kind of file goes in: judge a batch, insert what passed.

    A kind builds the API's schemas it judges with once, for the whole import
    (a marshmallow schema deep-copies its fields when it is made).
    """

    kind = ""

    def __init__(self) -> None:
        self.admitted_over_capacity = 0

    @abc.abstractmethod
    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        """Judge ``rows``, insert the good ones; how many went in, and the refusals."""

    def finish(self) -> None:  # noqa: B027 - most kinds have nothing to do afterwards
        """After the last batch (the kinds that change figures bring them up to date)."""


class _Areas(_Kind):
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
                _required(row, self.kind)
                cells = row.cells
                policy: dict[str, Any] = {}
                for name, kind in self._policy:
                    value = _optional(cells, name)
                    if value is None:
                        continue
                    if kind is bool:
                        policy[name] = _flag(value, name)
                    elif kind is str:
                        policy[name] = value
                    else:
                        policy[name] = _number(value, name, kind)
                body = {
                    "code": cells["code"],
                    "name": cells["name"],
                    "policy": {
                        k: float(v) if isinstance(v, Decimal) else v for k, v in policy.items()
                    },
                }
                if _optional(cells, "parent_code"):
                    body["parent_code"] = cells["parent_code"]
                loaded = _schema_load(self.schema, body)
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


class _Estates(_Kind):
    kind = "estates"

    def __init__(self) -> None:
        super().__init__()
        self.schema = EstateCreateSchema()

    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        refusals, accepted = [], 0
        areas = _areas_by_code({r.cells.get("area_code") for r in rows})
        codes = {r.cells.get("estate_code") for r in rows} - {None, ""}
        taken = set(db.session.scalars(sa.select(Estate.code).where(Estate.code.in_(codes))))
        for row in rows:
            try:
                _required(row, self.kind)
                cells = row.cells
                loaded = _schema_load(
                    self.schema,
                    {
                        "area_code": cells["area_code"],
                        "name": cells["name"],
                        "address": _optional(cells, "address"),
                        "property_company": _optional(cells, "property_company"),
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


def _areas_by_code(codes: Iterable[str | None]) -> dict[str, Area]:
    wanted = {c for c in codes if c}
    return {a.code: a for a in db.session.scalars(sa.select(Area).where(Area.code.in_(wanted)))}


class _Dwellings(_Kind):
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
        self.schema = _Loader(DwellingCreateSchema())

    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        refusals: list[Refusal] = []
        areas = _areas_by_code({r.cells.get("area_code") for r in rows})
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
                _required(row, self.kind)
                cells = row.cells
                loaded = self.schema.load(
                    {
                        "area_code": cells["area_code"],
                        "address": cells["address"],
                        "address_code": cells["address_code"],
                        "landlord_name": _optional(cells, "landlord_name"),
                        "landlord_phone": _optional(cells, "landlord_phone"),
                        "building_area_m2": _float(cells, "building_area_m2"),
                        "usable_area_m2": _float(cells, "usable_area_m2"),
                        "rooms": _number(cells["rooms"], "rooms"),
                        "status": _optional(cells, "status") or DwellingStatus.RENTABLE.value,
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
                if _optional(cells, "estate_code"):
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
        if values and _on_postgresql():
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
        ids = _next_ids(Dwelling.__tablename__, len(values))
        for dwelling_id, value, phone in zip(ids, values, phones, strict=True):
            value["id"] = dwelling_id
            if phone:
                value["landlord_phone_enc"] = encrypt(
                    phone, LANDLORD_PHONE_PURPOSE, f"dwellings:{dwelling_id}"
                )
                value["landlord_phone_masked"] = mask(phone, start=1, end=4)
        _copy(
            Dwelling.__tablename__,
            self.columns,
            ([value.get(name) for name in self.columns] for value in values),
        )

    def finish(self) -> None:
        from anjuka.stats.operations import rebuild

        rebuild()


def _float(cells: dict[str, str], name: str) -> float | None:
    value = _optional(cells, name)
    return None if value is None else float(_number(value, name, Decimal))


@dataclass
class _Judged:
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


class _Residents(_Kind):
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
        self.schema = _Loader(PersonInputSchema())
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
        judged: list[_Judged] = []
        for row in rows:
            try:
                judged.append(self._judge(row, dwellings, today))
            except RowRefused as refused:
                refusals.append(Refusal(row.line, refused.code, refused.field, refused.message))
        persons = self._persons(judged)
        living = self._living_now({persons[j.index] for j in judged if j.index in persons})
        counted = occupancies(list({j.dwelling.id for j in judged if j.departed_on is None}))
        taken: list[_Judged] = []
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

    def _judge(self, row: Row, dwellings: dict[str, Dwelling], today: date) -> _Judged:
        _required(row, self.kind)
        cells = row.cells
        person = self.schema.load(
            {
                "document_type": cells["document_type"],
                "document_number": cells["document_number"],
                "name": cells["name"],
                "phone": _optional(cells, "phone"),
                "origin": _optional(cells, "origin"),
                "sex": _optional(cells, "sex"),
                "birth_date": _optional(cells, "birth_date"),
            },
        )
        try:
            document = parse_document(
                person["document_type"], person["document_number"], today=today
            )
        except AppError as exc:
            raise RowRefused(exc.code, exc.message, "document_number") from None
        arrived_on = _day(cells["arrived_on"], "arrived_on")
        departed_on = _day(_optional(cells, "departed_on"), "departed_on")
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
        return _Judged(
            row,
            document,
            person,
            dwelling,
            arrived_on,
            departed_on,
            index,
            minor=is_minor(birth, arrived_on),
        )

    def _count(self, item: _Judged, counted: dict[int, Occupancy]) -> None:
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

    def _persons(self, judged: list[_Judged]) -> dict[str, int]:
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
        if new and _on_postgresql():
            ids = _next_ids(Person.__tablename__, len(new))
            for person_id, values in zip(ids, new.values(), strict=True):
                values["id"] = person_id
            _copy(
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

    def _insert(self, taken: list[_Judged], persons: dict[str, int]) -> None:
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
        if _on_postgresql():
            _copy(Residence.__tablename__, columns, rows)
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


KINDS: dict[str, Callable[[], _Kind]] = {
    "areas": _Areas,
    "estates": _Estates,
    "dwellings": _Dwellings,
    "residents": _Residents,
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


def _load(handler: _Kind, batch: list[Row], run: ImportRun, report: ImportReport) -> None:
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
