"""The offline bundle and the patrol laptop's verifier: same answers as online."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cardkit import new_uid

from anjuka.cards.models import Card, CardChip
from anjuka.core.db import db
from anjuka.core.keys import keyring
from anjuka.core.time import local_today, utcnow
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
from cardreader.record import decode_record


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
    assert bundle["timezone"] == "Asia/Shanghai"  # the registry's calendar, signed with the rest

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


def _last_attempt(job_id: int) -> None:
    from anjuka.cards.jobs import MAX_ATTEMPTS
    from anjuka.cards.models import CardJob

    db.session.execute(sa.update(CardJob).where(CardJob.id == job_id).values(attempt=MAX_ATTEMPTS))
    db.session.commit()


def test_the_orphaned_chip_of_a_rebound_or_failed_issuance_is_refused_offline(
    client, patrol, arrive, create_dwelling
):
    """A chip holding a record signed for it that never became the card reads as such offline."""
    desk, officer = patrol["desk"], patrol["officer"]
    dwelling = create_dwelling("P", usable=60, rooms=3)
    headers = desk.desk_headers

    # Rebound: chip A is written (the commit marker too) but its report never comes;
    # the clerk presents chip B, the job rebinds to B and B becomes the card.
    rebound = desk.queue(arrive(headers, dwelling).json["id"])
    uid_a, uid_b = new_uid(), new_uid()
    on_a = desk.bind(rebound["job_id"], uid_a)
    on_b = desk.bind(rebound["job_id"], uid_b)
    desk.report(rebound["job_id"], outcome="done", uid=uid_b, record=on_b.hex())
    assert desk.card(rebound["card_no"])["status"] == "active"

    # Failed: chip C holds its record, but the job fails for good; the card stays pending.
    failed = desk.queue(arrive(headers, dwelling).json["id"])
    uid_c = new_uid()
    on_c = desk.bind(failed["job_id"], uid_c)
    _last_attempt(failed["job_id"])
    desk.report(failed["job_id"], outcome="failed", uid=uid_c, error="read-back failed")
    assert desk.card(failed["card_no"])["status"] == "pending"

    bundle = fetch(client, officer)
    trusted = keyring().signing_public_keys()
    now = utcnow()
    assert len(bundle["withdrawn"]) == 2
    for uid, record in ((uid_a, on_a), (uid_c, on_c)):
        refused = verify(record, uid, bundle, now, trusted_keys=trusted)
        assert (refused.result, refused.reason) == ("unknown", "never_activated"), refused
    assert verify(on_b, uid_b, bundle, now, trusted_keys=trusted).result == "valid"
    for card in patrol["cards"]:
        assert verify(card.record, card.uid, bundle, now, trusted_keys=trusted).result == "valid"
    # Online says as much: chip A is not the card's chip, and C's card was never activated.
    assert online(client, officer, uid_a, on_a) == "forged"
    assert online(client, officer, uid_c, on_c) == "unknown"

    # The failed card is issued again on chip C, the same day: a record with other
    # bytes (one day shorter), so the laptop that refuses the old one takes the new.
    retried = client.post(f"/api/v1/cards/{failed['card_no']}/retry", json={}, headers=headers)
    assert retried.status_code == 202, retried.json
    job = client.get(
        f"/api/v1/readers/{desk.reader_id}/jobs/next?wait=0", headers=desk.reader_headers
    ).json
    again = desk.bind(job["id"], uid_c)
    assert again != on_c
    assert decode_record(again)[0].valid_until == decode_record(on_c)[0].valid_until - timedelta(
        days=1
    )
    desk.report(job["id"], outcome="done", uid=uid_c, record=again.hex())
    assert desk.card(failed["card_no"])["status"] == "active"
    assert verify(again, uid_c, bundle, now, trusted_keys=trusted).result == "valid"
    assert verify(on_c, uid_c, bundle, now, trusted_keys=trusted).reason == "never_activated"


def test_withdrawn_records_come_in_deltas_and_leave_with_their_validity(
    client, patrol, arrive, create_dwelling
):
    desk, officer = patrol["desk"], patrol["officer"]
    dwelling = create_dwelling("P", usable=60, rooms=3)
    full = fetch(client, officer)
    assert full["withdrawn"] == []
    # A pending card's job is cancelled when its reader is revoked: its chip keeps the record.
    queued = desk.queue(arrive(desk.desk_headers, dwelling).json["id"])
    uid = new_uid()
    record = desk.bind(queued["job_id"], uid)
    from anjuka.cards.operations import revoke_reader
    from anjuka.cards.permissions import get_reader_or_404

    revoke_reader(get_reader_or_404(desk.reader_id, lock="update"))
    db.session.commit()
    assert desk.card(queued["card_no"])["status"] == "pending"
    delta = fetch(client, officer, since=full["cursor"])
    assert delta["withdrawn"] == [hashlib.sha256(record).hexdigest()]
    state = RevocationList.from_bundles([full, delta], keyring().signing_public_keys())
    assert verify(record, uid, state, utcnow()).reason == "never_activated"
    # Once its own validity is over, it is refused by its date and leaves the list.
    db.session.execute(sa.update(CardChip).values(valid_until=local_today() - timedelta(days=10)))
    db.session.commit()
    assert fetch(client, officer)["withdrawn"] == []
