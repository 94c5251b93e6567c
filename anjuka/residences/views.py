"""Turning residences and persons into response bodies, masked by default."""

from __future__ import annotations

from anjuka.core.privacy import mask_name
from anjuka.core.security import Identity
from anjuka.persons.models import Person
from anjuka.persons.operations import reveal_person
from anjuka.residences.models import Residence


def person_view(person: Person, identity: Identity, *, reveal: bool, area_code: str | None) -> dict:
    """A person: masked, or in clear (audited) when revealed; an anonymised one has no identity."""
    if person.anonymised_on is not None:
        return {
            "id": person.id,
            "document_type": person.document_type,
            "document_number": None,
            "document_masked": True,
            "name": None,
            "sex": person.sex,
            "birth_date": None,
            "phone": None,
            "origin": person.origin,
        }
    if reveal:
        revealed = reveal_person(person, identity, area_code=area_code)
        return {
            "id": person.id,
            "document_type": person.document_type,
            "document_masked": False,
            "sex": person.sex,
            "origin": person.origin,
            **revealed,
        }
    return {
        "id": person.id,
        "document_type": person.document_type,
        "document_number": person.document_masked,
        "document_masked": True,
        "name": mask_name(person.name),
        "sex": person.sex,
        "birth_date": None,
        "phone": person.phone_masked,
        "origin": person.origin,
    }


def residence_view(residence: Residence, identity: Identity, *, reveal: bool = False) -> dict:
    """A residence with its (masked) person and the dwelling's address."""
    return {
        "id": residence.id,
        "person_id": residence.person_id,
        "dwelling_id": residence.dwelling_id,
        "address": residence.dwelling.address,
        "arrived_on": residence.arrived_on,
        "departed_on": residence.departed_on,
        "current": residence.departed_on is None,
        "registered_at": residence.registered_at,
        "registration_deadline": residence.registration_deadline,
        "late": residence.late,
        "minor": residence.minor,
        "family_relation": residence.family_relation,
        "family_of_residence_id": residence.family_of_id,
        "override_reason": residence.override_reason,
        "card_returned": residence.card_returned,
        "person": person_view(
            residence.person, identity, reveal=reveal, area_code=residence.dwelling.area.code
        ),
    }
