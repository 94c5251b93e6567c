"""The CSV files a legacy import reads and ``anjuka gen-city`` writes (docs/import.md).

One header row, then one record per row; an empty cell is "not given".
Files may be UTF-8 (with or without a BOM) or GB 18030; digits may be
full-width. The columns named here are the contract: a file may order
them freely and carry others, which are ignored.
"""

from __future__ import annotations

#: Columns of each kind of file, in the order gen-city writes them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "areas": (
        "code",
        "name",
        "parent_code",
        "min_area_per_person_m2",
        "area_basis",
        "max_persons_per_room",
        "minors_count",
        "registration_deadline_days",
        "card_return_grace_days",
        "card_validity_days",
    ),
    "estates": ("estate_code", "area_code", "name", "address", "property_company"),
    "dwellings": (
        "address_code",
        "area_code",
        "estate_code",
        "address",
        "building_area_m2",
        "usable_area_m2",
        "rooms",
        "status",
        "landlord_code",
        "landlord_name",
        "landlord_phone",
    ),
    "landlords": ("landlord_code", "name", "phone", "dwellings"),
    "residents": (
        "document_type",
        "document_number",
        "name",
        "sex",
        "birth_date",
        "phone",
        "origin",
        "address_code",
        "arrived_on",
        "departed_on",
    ),
    "cards": ("card_no", "document_number", "address_code", "arrived_on", "status", "expires_on"),
}
#: Columns a row of each kind must fill.
REQUIRED: dict[str, tuple[str, ...]] = {
    "areas": ("code", "name"),
    "estates": ("estate_code", "area_code", "name"),
    "dwellings": ("address_code", "area_code", "address", "rooms"),
    "residents": ("document_type", "document_number", "name", "address_code", "arrived_on"),
}
#: The kinds ``anjuka import`` loads, in the order they depend on each other.
IMPORT_KINDS = ("areas", "estates", "dwellings", "residents")
