"""``anjuka sweep``: time-triggered alerts, once however often it runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from anjuka.alerts.commands import sweep
from anjuka.alerts.models import Alert, SweepCursor
from anjuka.alerts.sweep import run_sweep
from anjuka.cards.models import Reader
from anjuka.core.db import db
from anjuka.core.time import local_today, utcnow
from anjuka.residences.models import Residence


def alerts(kind: str | None = None) -> list[Alert]:
    db.session.expire_all()
    stmt = sa.select(Alert).order_by(Alert.id)
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    return list(db.session.scalars(stmt))


def day(offset: int) -> date:
    return local_today() + timedelta(days=offset)


def run_cli(app, as_of: date, *extra: str) -> str:  # type: ignore[no-untyped-def]
    db.session.commit()  # SQLite: let the command take the write lock
    result = app.test_cli_runner().invoke(sweep, ["--as-of", as_of.isoformat(), *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def registry(create_area, create_dwelling, create_user, arrive, card_desk):
    """Area G (7 grace days) with a supervisor, a dwelling and a card desk."""
    create_area("G", card_return_grace_days=7)
    supervisor = create_user("supervisor", ["area:G"])
    dwelling = create_dwelling("G", usable=100, rooms=10)

    def resident(arrived: int = -30) -> int:
        response = arrive(supervisor["headers"], dwelling, arrived_on=day(arrived).isoformat())
        assert response.status_code == 201, response.json
        return response.json["id"]

    return {
        "supervisor": supervisor,
        "dwelling": dwelling,
        "resident": resident,
        "desk": card_desk(supervisor["headers"], "G"),
    }


def depart(client, registry, residence_id: int, on: int, **extra: object) -> None:
    response = client.post(
        f"/api/v1/residences/{residence_id}/departure",
        json={"departed_on": day(on).isoformat(), **extra},
        headers=registry["supervisor"]["headers"],
    )
    assert response.status_code == 200, response.json


@pytest.mark.registry_clock
def test_a_card_not_returned_raises_once_after_the_grace_days(app, client, registry):
    residence = registry["resident"]()
    card = registry["desk"].issue(residence)
    depart(client, registry, residence, on=-2)  # the card is revoked, still out there

    assert "raised none" in run_cli(app, day(0))
    run_cli(app, day(5))  # due on day 5: not yet overdue
    assert alerts("card_not_returned") == []

    output = run_cli(app, day(6))
    assert "card_not_returned 1" in output
    for as_of in (6, 6, 10, 30):
        assert "raised none" in run_cli(app, day(as_of))
    [alert] = alerts("card_not_returned")
    assert (alert.subject_type, alert.subject_id) == ("residence", str(residence))
    assert alert.count == 1
    assert alert.details["card_nos"] == [card.card_no]
    assert alert.details["due_on"] == day(5).isoformat()
    assert alert.area.code == "G"

    # Resolved by a supervisor, it does not come back.
    response = client.post(
        f"/api/v1/alerts/{alert.id}/resolve",
        json={"note": "resident reached by phone, will bring the card"},
        headers=registry["supervisor"]["headers"],
    )
    assert response.status_code == 200
    run_cli(app, day(40))
    assert [a.status for a in alerts("card_not_returned")] == ["resolved"]


def test_a_returned_card_raises_nothing_and_a_late_return_resolves(app, client, registry):
    returned = registry["resident"]()
    card = registry["desk"].issue(returned)
    depart(client, registry, returned, on=-2)
    registry["desk"].take_back(card)

    late = registry["resident"]()
    late_card = registry["desk"].issue(late)
    depart(client, registry, late, on=-2)
    run_cli(app, day(10))
    [alert] = alerts("card_not_returned")
    assert alert.subject_id == str(late)

    registry["desk"].take_back(late_card)
    run_cli(app, day(11))  # resolved when the card came back, or by this sweep at the latest
    [alert] = alerts("card_not_returned")
    assert alert.status == "resolved"
    assert alert.auto_resolved
    assert alert.note == "resolved: cause gone: the card was returned"


def mark_returned(card_no: str) -> None:
    """A return the alerts were not told about (a record repaired by hand)."""
    from anjuka.cards.models import Card

    db.session.execute(
        sa.update(Card)
        .where(Card.card_no == card_no)
        .values(status="returned", returned_at=utcnow())
    )


def test_the_sweep_resolves_a_return_it_was_not_told_about(app, client, registry):
    residence = registry["resident"]()
    issued = registry["desk"].issue(residence)
    depart(client, registry, residence, on=-1)
    run_cli(app, day(10))
    mark_returned(issued.card_no)
    assert alerts("card_not_returned")[0].status == "open"
    assert "resolved card_not_returned 1" in run_cli(app, day(11))
    assert alerts("card_not_returned")[0].note == "resolved: cause gone: the card was returned"


@pytest.mark.registry_clock
def test_without_a_card_only_a_recorded_non_return_counts(app, client, registry):
    no_card = registry["resident"]()
    depart(client, registry, no_card, on=-1)
    said_not_returned = registry["resident"]()
    depart(client, registry, said_not_returned, on=-1, card_returned=False)
    said_returned = registry["resident"]()
    depart(client, registry, said_returned, on=-1, card_returned=True)
    run_cli(app, day(20))
    assert [a.subject_id for a in alerts("card_not_returned")] == [str(said_not_returned)]


def test_the_real_console_script(app, client, registry, tmp_path: Path, keys_file: Path):
    residence = registry["resident"]()
    registry["desk"].issue(residence)
    depart(client, registry, residence, on=-1)
    db.session.commit()
    url = db.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    env = {
        **os.environ,
        "ANJUKA_DATABASE_URL": url,
        "ANJUKA_KEYS_FILE": str(keys_file),
        "ANJUKA_INSTANCE_PATH": str(tmp_path),
    }
    script = Path(sys.executable).parent / "anjuka"
    as_of = day(9).isoformat()
    for _ in range(2):
        done = subprocess.run(
            [str(script), "sweep", "--as-of", as_of],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert f"sweep as of {as_of}" in done.stdout
    [alert] = alerts("card_not_returned")
    assert alert.subject_id == str(residence)


def test_the_sweep_reads_only_what_is_new(app, client, registry):
    """Records older than the window and written before the last run are not read again."""
    run_cli(app, day(0))
    cursor = db.session.get(SweepCursor, "card_not_returned")
    assert (cursor.last_as_of, cursor.runs) == (day(0), 1)

    caught = registry["resident"](arrived=-60)
    registry["desk"].issue(caught)
    depart(client, registry, caught, on=-30)  # recorded today, dated a month ago
    ignored = registry["resident"](arrived=-60)
    registry["desk"].issue(ignored)
    depart(client, registry, ignored, on=-30)
    # As if this departure had been written (and swept) long ago.
    db.session.execute(
        sa.update(Residence)
        .where(Residence.id == ignored)
        .values(departure_registered_at=utcnow() - timedelta(days=29))
    )
    run_cli(app, day(0))
    assert [a.subject_id for a in alerts("card_not_returned")] == [str(caught)]
    assert db.session.get(SweepCursor, "card_not_returned").runs == 2


@pytest.mark.registry_clock
def test_late_registration_backstop(app, registry):
    residence = registry["resident"](arrived=-1)
    assert alerts("late_registration") == []
    # A repaired record: marked late after the fact, no event raised it.
    db.session.execute(sa.update(Residence).where(Residence.id == residence).values(late=True))
    assert "late_registration 1" in run_cli(app, day(0))
    assert "raised none" in run_cli(app, day(0))
    [alert] = alerts("late_registration")
    assert alert.subject_id == str(residence)


@pytest.mark.registry_clock
def test_expiring_cards_and_registrations(app, client, create_user, registry):
    patched = client.patch(
        "/api/v1/areas/G",
        json={"policy": {"card_validity_days": 20}},
        headers=create_user("admin")["headers"],
    )
    assert patched.status_code == 200, patched.json
    residence = registry["resident"](arrived=-5)
    card = registry["desk"].issue(residence)

    run_cli(app, day(0), "--expiring-days", "10")
    assert alerts("card_expiring") == []
    output = run_cli(app, day(0), "--expiring-days", "30")
    assert "card_expiring 1" in output
    [expiring] = alerts("card_expiring")
    assert expiring.subject_id == card.card_no
    # The residence has a card, so its registration is not separately expiring.
    assert alerts("registration_expiring") == []

    registry["desk"].revoke(card.card_no, "lost")
    output = run_cli(app, day(1), "--expiring-days", "30")
    assert "resolved card_expiring 1" in output
    [registration] = alerts("registration_expiring")
    assert registration.subject_id == str(residence)
    assert registration.details["expires_on"] == day(15).isoformat()
    assert "raised none" in run_cli(app, day(2), "--expiring-days", "30")


@pytest.mark.registry_clock
def test_a_silent_reader_goes_offline_and_comes_back(app, client, registry):
    desk = registry["desk"]
    db.session.execute(
        sa.update(Reader)
        .where(Reader.id == desk.reader_id)
        .values(last_seen_at=utcnow() - timedelta(days=3))
    )
    assert "reader_offline 1" in run_cli(app, day(0))
    assert "raised none" in run_cli(app, day(0))
    [alert] = alerts("reader_offline")
    assert alert.subject_id == str(desk.reader_id)
    assert alert.area.code == "G"
    assert alert.details["silent_hours"] >= 72

    polled = client.get(
        f"/api/v1/readers/{desk.reader_id}/jobs/next?wait=0", headers=desk.reader_headers
    )
    assert polled.status_code == 204
    assert "resolved reader_offline 1" in run_cli(app, day(0))
    assert alerts("reader_offline")[0].auto_resolved


def test_concurrent_sweeps_raise_each_alert_once(app, client, registry):
    for _ in range(3):
        residence = registry["resident"]()
        registry["desk"].issue(residence)
        depart(client, registry, residence, on=-1)
    db.session.commit()
    barrier = threading.Barrier(2)
    reports: list = []
    errors: list[BaseException] = []

    def sweep_in_own_transaction() -> None:
        try:
            with app.app_context():
                barrier.wait()
                reports.append(run_sweep(day(9)))
                db.session.commit()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=sweep_in_own_transaction) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(alerts("card_not_returned")) == 3
    assert [a.count for a in alerts("card_not_returned")] == [1, 1, 1]
    # Without the lock both would raise (and the second repeat) each alert.
    assert sum(r.raised["card_not_returned"] for r in reports) == 3


def test_the_card_returned_signal_resolves_at_once(app, client, registry):
    """The cards domain announces a return; the alert then closes without a sweep."""
    from anjuka.cards.models import Card
    from anjuka.core import signals

    residence = registry["resident"]()
    issued = registry["desk"].issue(residence)
    depart(client, registry, residence, on=-1)
    run_cli(app, day(10))
    mark_returned(issued.card_no)
    card = db.session.scalar(sa.select(Card).where(Card.card_no == issued.card_no))
    assert alerts("card_not_returned")[0].status == "open"
    signals.card_returned.send(card)
    [alert] = alerts("card_not_returned")
    assert alert.status == "resolved"
    assert alert.note == "resolved: cause gone: the card was returned"
