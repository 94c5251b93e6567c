"""The rules the database itself holds, tried behind the application's back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from card_helpers import new_uid
from sqlalchemy.exc import IntegrityError

from anjuka.cards.models import Card, CardJob
from anjuka.core.db import db
from anjuka.core.time import utcnow


@pytest.fixture
def residence(desk) -> dict:
    return desk.arrive_here()


def _card(residence: dict, serial: int, **values: object) -> Card:
    from cardreader.cardno import make_card_no

    fields = {
        "card_no": make_card_no(90_000_000 + serial),
        "residence_id": residence["id"],
        "person_id": residence["person_id"],
        "status": "pending",
    }
    fields.update(values)
    return Card(**fields)


def _active(residence: dict, serial: int, uid: str | None = None) -> Card:
    return _card(
        residence,
        serial,
        status="active",
        uid=uid or new_uid(),
        card_type="cpu",
        record=b"\x00" * 113,
        activated_at=utcnow(),
    )


def _refused(*rows: object) -> None:
    db.session.add_all(rows)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_at_most_one_active_card_per_person(residence):
    _refused(_active(residence, 1), _active(residence, 2))
    # One active and one pending (a reissue under way) is allowed...
    db.session.add_all([_active(residence, 3), _card(residence, 4)])
    db.session.commit()
    # ...two pending are not.
    _refused(_card(residence, 5))
    # Revoked and returned cards do not count.
    db.session.add(
        _card(residence, 6, status="revoked", revocation_reason="lost", revoked_at=utcnow())
    )
    db.session.commit()


def test_one_chip_carries_at_most_one_active_card(desk, residence):
    other = desk.arrive_here()
    uid = new_uid()
    _refused(_active(residence, 1, uid), _active(other, 2, uid))


@pytest.mark.parametrize(
    "values",
    [
        {"status": "lost"},
        {"status": "revoked"},  # without a reason
        {"status": "pending", "revocation_reason": "lost"},
        {"status": "revoked", "revocation_reason": "stolen", "revoked_at": utcnow()},
        {"status": "active"},  # never written
        {"status": "returned"},  # without a time
        {"card_type": "desfire"},
        {"uid": "abc"},
        {"card_no": "AJ123"},
    ],
)
def test_card_checks(residence, values):
    _refused(_card(residence, 1, **values))


def test_one_open_job_per_card(desk, residence):
    card = _card(residence, 1)
    db.session.add(card)
    db.session.commit()

    def job(**values: object) -> CardJob:
        return CardJob(reader_id=desk.reader_id, card_id=card.id, kind="issue", **values)

    _refused(job(), job(status="claimed", lease_expires_at=utcnow()))
    db.session.add_all([job(), job(status="failed", finished_at=utcnow())])
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CardJob)) == 2


@pytest.mark.parametrize(
    "values",
    [
        {"status": "done"},  # finished without a time
        {"status": "queued", "finished_at": utcnow()},
        {"status": "claimed"},  # held without a lease
        {"status": "paused"},
        {"kind": "erase"},  # an erase must know its chip
        {"kind": "read"},
        {"attempt": -1},
        {"card_type": "desfire"},
    ],
)
def test_job_checks(desk, residence, values):
    card = _card(residence, 1)
    db.session.add(card)
    db.session.commit()
    fields = {"reader_id": desk.reader_id, "card_id": card.id, "kind": "issue"}
    _refused(CardJob(**{**fields, **values}))
