"""The importer's field-by-field load gives what the API's schema gives, row for row."""

from __future__ import annotations

import marshmallow as ma
import pytest

from anjuka.dwellings.schemas import DwellingCreateSchema
from anjuka.imports.judging import RowRefused, SchemaLoader, schema_load
from anjuka.residences.schemas import PersonInputSchema

PERSON = {
    "document_type": "resident_id",
    "document_number": "11010519491231002X",
    "name": "张三",
    "phone": "13800138000",
    "origin": "安徽",
    "sex": None,
    "birth_date": None,
}
DWELLING = {
    "area_code": "C1",
    "address": "1 Road, room 2",
    "address_code": "C100000001",
    "landlord_name": None,
    "landlord_phone": "13900000000",
    "building_area_m2": 30.5,
    "usable_area_m2": None,
    "rooms": 2,
    "status": "rentable",
}


def _outcome(load, data):  # type: ignore[no-untyped-def]
    try:
        return ("loaded", load(dict(data)))
    except RowRefused as refused:
        return ("refused", refused.code, refused.field, refused.message)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"birth_date": "1990-02-03", "sex": "F"},
        {"name": ""},
        {"name": "x" * 201},
        {"phone": "call me"},
        {"document_type": "library_card"},
        {"sex": "X"},
        {"birth_date": "1990-02-30"},
        {"document_number": None},
        {"origin": ""},
    ],
)
def test_a_person_is_loaded_or_refused_as_the_schema_does(change):
    data = {**PERSON, **change}
    fast = _outcome(SchemaLoader(PersonInputSchema()).load, data)
    assert fast == _outcome(lambda d: schema_load(PersonInputSchema(), d), data)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"estate_id": None},
        {"rooms": 0},
        {"rooms": "2"},
        {"building_area_m2": -1.0},
        {"status": "haunted"},
        {"address": ""},
        {"landlord_phone": "abc"},
    ],
)
def test_a_dwelling_is_loaded_or_refused_as_the_schema_does(change):
    data = {**DWELLING, **change}
    fast = _outcome(SchemaLoader(DwellingCreateSchema()).load, data)
    assert fast == _outcome(lambda d: schema_load(DwellingCreateSchema(), d), data)


def test_a_row_without_a_defaulted_field_goes_through_the_schema():
    data = {k: v for k, v in DWELLING.items() if k != "status"}
    loaded = SchemaLoader(DwellingCreateSchema()).load(data)
    assert loaded["status"] == "rentable"  # the schema's default, applied by the schema


def test_a_schema_with_hooks_is_not_taken():
    class Hooked(ma.Schema):
        name = ma.fields.String()

        @ma.pre_load
        def tidy(self, data, **_):  # type: ignore[no-untyped-def]
            return data

    with pytest.raises(ValueError, match="hooks"):
        SchemaLoader(Hooked())
