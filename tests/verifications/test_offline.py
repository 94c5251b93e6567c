"""The offline bundle and the patrol laptop's verifier: same answers as online."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from anjuka.cards.models import Card
from anjuka.core.keys import keyring
from anjuka.core.time import local_today, utcnow
from anjuka.extensions import db
from anjuka.verifications import api as verifications_api
from cardreader.offline import (
    BundleChainError,
    BundleExpiredError,
    BundleSignatureError,
    RevocationList,
    check_signature,
    parse_time,
    verify,
)


@pytest.fixture
def patrol(client, create_area, create_dwelling, create_user, arrive, card_desk):
    """Two residents of area P with active cards; an officer of P."""
    create_area("P")
    supervisor = create_user("supervisor", ["area:P"])
    dwelling = create_dwelling("P", usable=60, rooms=3)
    desk = card_desk(supervisor["headers"], "P")
    cards = []
    for _ in range(3):
        residence = arrive(supervisor["headers"], dwelling)
        assert residence.status_code == 201
        cards.append(desk.issue(residence.json["id"]))
    return {"officer": create_user("officer", ["area:P"]), "desk": desk, "cards": cards}


def fetch(client, officer, since: str | None = None, **headers: str) -> dict:
    query = f"?since={since}" if since else ""
    response = client.get(
        f"/api/v1/offline-bundle{query}", headers={**officer["headers"], **headers}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def online(client, officer, uid: str, record: bytes) -> str:
    response = client.post(
        "/api/v1/verifications",
        json={"uid": uid, "record": record.hex()},
        headers=officer["headers"],
    )
    assert response.status_code == 201, response.json
    return response.json["result"]


def test_the_bundle_is_signed_by_the_server(client, patrol):
    patrol["desk"].revoke(patrol["cards"][0].card_no, "lost")
    bundle = fetch(client, patrol["officer"])
    assert set(bundle) >= {"keys", "revoked", "cursor", "issued_at", "expires_at", "signature"}
    assert bundle["keys"][0]["algorithm"] == "Ed25519"
    assert bundle["revoked"] == [patrol["cards"][0].card_no]
    lifetime = parse_time(bundle["expires_at"]) - parse_time(bundle["issued_at"])
    assert lifetime == timedelta(hours=24)

    pinned = keyring().signing_public_keys()
    check_signature(bundle, pinned)
    trimmed = copy.deepcopy(bundle)
    trimmed["revoked"] = []  # someone un-revokes a card on the way
    with pytest.raises(BundleSignatureError):
        check_signature(trimmed, pinned)


@pytest.mark.registry_clock
def test_offline_answers_match_online(client, patrol):
    """valid, revoked and forged: the same word with and without the network."""
    officer = patrol["officer"]
    good, lost, _ = patrol["cards"]
    patrol["desk"].revoke(lost.card_no, "lost")
    tampered = bytearray(good.record)
    tampered[20] ^= 0x40  # the residence reference
    bundle = fetch(client, officer)
    now = utcnow()
    trusted = keyring().signing_public_keys()
    cases = [
        ("valid", good.uid, good.record),
        ("revoked", lost.uid, lost.record),
        ("forged", good.uid, bytes(tampered)),
    ]
    for expected, uid, record in cases:
        offline = verify(record.hex(), uid, bundle, now, trusted_keys=trusted)
        assert offline.result == expected, (expected, offline)
        assert online(client, officer, uid, record) == expected
    assert verify(good.record.hex(), good.uid, bundle, now).card_no == good.card_no
    # A copy onto another chip: offline cannot tell it from a forgery, online can.
    copied = verify(good.record, "04" * 7, bundle, now, trusted_keys=trusted)
    assert copied.result == "forged"
    assert online(client, officer, "04" * 7, good.record) == "clone_suspected"


@pytest.mark.registry_clock
def test_a_stale_bundle_is_refused(client, patrol):
    bundle = fetch(client, patrol["officer"])
    card = patrol["cards"][0]
    expiry = parse_time(bundle["expires_at"])
    assert verify(card.record, card.uid, bundle, expiry - timedelta(seconds=1)).result == "valid"
    with pytest.raises(BundleExpiredError, match="expired at .*fetch a fresh one"):
        verify(card.record, card.uid, bundle, expiry)


def test_deltas_carry_what_was_revoked_since(client, patrol):
    officer = patrol["officer"]
    first, second, third = patrol["cards"]
    patrol["desk"].revoke(first.card_no, "damaged")
    # As if revoked long before the bundle below was cut.
    db.session.execute(
        sa.update(Card)
        .where(Card.card_no == first.card_no)
        .values(revoked_at=utcnow() - timedelta(hours=3))
    )
    db.session.commit()
    full = fetch(client, officer)
    assert full["since"] is None
    patrol["desk"].revoke(second.card_no, "lost")
    delta = fetch(client, officer, since=full["cursor"])
    assert delta["since"] == full["cursor"]
    assert delta["revoked"] == [second.card_no]

    state = RevocationList.from_bundles([full, delta], keyring().signing_public_keys())
    assert state.revoked == {first.card_no, second.card_no}
    now = utcnow()
    assert verify(second.record, second.uid, state, now).result == "revoked"
    assert verify(third.record, third.uid, state, now).result == "valid"
    with pytest.raises(BundleChainError):
        state.apply(delta)  # the same delta again does not continue the new cursor
    with pytest.raises(BundleChainError):
        RevocationList.from_bundles([delta])


@pytest.mark.registry_clock
def test_expired_cards_drop_out_of_the_list(client, patrol):
    old, recent, _ = patrol["cards"]
    for card in (old, recent):
        patrol["desk"].revoke(card.card_no, "lost")
    db.session.execute(
        sa.update(Card)
        .where(Card.card_no == old.card_no)
        .values(expires_on=local_today() - timedelta(days=10))
    )
    db.session.commit()
    assert fetch(client, patrol["officer"])["revoked"] == [recent.card_no]


def test_bad_cursors_and_roles(client, patrol, create_user):
    officer = patrol["officer"]
    for since in ("yesterday", "2999-01-01T00:00:00Z"):
        response = client.get(f"/api/v1/offline-bundle?since={since}", headers=officer["headers"])
        assert response.status_code == 422
        assert response.json["error"] == "invalid_cursor"
    manager = create_user("manager")
    assert client.get("/api/v1/offline-bundle", headers=manager["headers"]).status_code == 403
    assert client.get("/api/v1/offline-bundle").status_code == 401


def test_the_bundle_travels_compressed(client, patrol, monkeypatch):
    monkeypatch.setattr(verifications_api, "GZIP_MIN_BYTES", 0)
    response = client.get(
        "/api/v1/offline-bundle",
        headers={**patrol["officer"]["headers"], "Accept-Encoding": "gzip"},
    )
    assert response.headers["Content-Encoding"] == "gzip"
    bundle = json.loads(gzip.decompress(response.get_data()))
    check_signature(bundle, keyring().signing_public_keys())
