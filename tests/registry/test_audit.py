"""The audit trail: what makes an event, and ``anjuka audit verify`` against tampering."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from registry_helpers import ANJUKA_COMMAND, command_env, today

from anjuka import create_app
from anjuka.audit.models import AuditChainHead, AuditEvent
from anjuka.audit.operations import verify
from anjuka.config import Config
from anjuka.core.db import db


def _events() -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)))


def test_every_write_sign_in_and_unmasked_read_is_an_event(
    client, create_user, create_area, create_dwelling
):
    admin = create_user("admin")
    headers = {**admin["headers"], "X-Request-Id": "req-0042"}
    start = len(_events())

    def expect(action, subject_type, subject_id, chain, **details):
        event = _events()[-1]
        assert (event.action, event.subject_type, event.subject_id, event.chain) == (
            action,
            subject_type,
            str(subject_id),
            chain,
        )
        assert event.actor_type == "user"
        assert event.actor_id == admin["id"]
        assert event.actor_name == admin["username"]
        assert event.origin == "127.0.0.1"
        assert event.request_id == "req-0042"
        assert event.occurred_at.utcoffset().total_seconds() == 0
        for key, value in details.items():
            assert event.details[key] == value, (key, event.details)
        return event

    assert (
        client.post("/api/v1/areas", json={"code": "Z1", "name": "z"}, headers=headers).status_code
        == 201
    )
    expect("area.create", "area", "Z1", "area:Z1")
    client.patch("/api/v1/areas/Z1", json={"policy": {"max_persons_per_room": 3}}, headers=headers)
    expect("area.update", "area", "Z1", "area:Z1")
    estate = client.post("/api/v1/estates", json={"area_code": "Z1", "name": "E"}, headers=headers)
    expect("estate.create", "estate", estate.json["id"], "area:Z1")
    dwelling = client.post(
        "/api/v1/dwellings",
        json={"area_code": "Z1", "address": "1 Z Road", "usable_area_m2": 30, "rooms": 2},
        headers=headers,
    ).json
    expect("dwelling.create", "dwelling", dwelling["id"], "area:Z1", rooms=2)
    client.patch(f"/api/v1/dwellings/{dwelling['id']}", json={"rooms": 3}, headers=headers)
    expect("dwelling.update", "dwelling", dwelling["id"], "area:Z1", rooms=3)
    arrival = client.post(
        "/api/v1/residences",
        json={
            "dwelling_id": dwelling["id"],
            "arrived_on": today().isoformat(),
            "person": {"document_type": "passport", "document_number": "E99887766", "name": "A"},
        },
        headers=headers,
    ).json
    expect(
        "residence.arrive", "residence", arrival["id"], "area:Z1", person_id=arrival["person_id"]
    )
    client.get(f"/api/v1/persons/{arrival['person_id']}?reveal=true", headers=headers)
    expect("person.reveal", "person", arrival["person_id"], "area:Z1")
    client.get(f"/api/v1/residences/{arrival['id']}?reveal=true", headers=headers)
    expect("person.reveal", "person", arrival["person_id"], "area:Z1")
    client.get(f"/api/v1/dwellings/{dwelling['id']}/residents?reveal=true", headers=headers)
    expect("person.reveal", "person", arrival["person_id"], "area:Z1")
    client.post(
        "/api/v1/persons/lookup",
        json={"document_type": "passport", "document_number": "E99887766", "reveal": True},
        headers=headers,
    )
    expect("person.reveal", "person", arrival["person_id"], "area:Z1")
    lookup = _events()[-2]  # the search itself, on the searcher's own chain
    assert (lookup.action, lookup.chain, lookup.details["outcome"]) == (
        "person.lookup",
        f"user:{admin['id']}",
        "found",
    )
    assert "E99887766" not in str(lookup.details)
    client.post(
        f"/api/v1/residences/{arrival['id']}/departure",
        json={"departed_on": today().isoformat()},
        headers=headers,
    )
    expect("residence.depart", "residence", arrival["id"], "area:Z1", reason="departure")
    made = client.post(
        "/api/v1/users",
        json={"username": "newbie", "role": "officer", "password": "p" * 12, "scopes": ["area:Z1"]},
        headers=headers,
    ).json
    expect("user.create", "user", made["id"], f"user:{made['id']}", role="officer")
    client.delete("/api/v1/auth/tokens/current", headers=headers)
    expect("auth.logout", "user", admin["id"], f"user:{admin['id']}")
    count = len(_events())
    assert count - start == 14

    # Masked reads, listings and refusals leave no event.
    token = client.post(
        "/api/v1/auth/tokens", json={"username": "newbie", "password": "p" * 12}
    ).json["token"]
    assert _events()[-1].action == "auth.login"
    officer = {"Authorization": f"Bearer {token}"}
    client.get(f"/api/v1/persons/{arrival['person_id']}", headers=officer)
    client.get("/api/v1/dwellings", headers=officer)
    client.post("/api/v1/areas", json={"code": "Z2", "name": "z"}, headers=officer)  # 403
    assert len(_events()) == count + 1


def test_appends_chain_per_area_and_per_user(client, create_user, create_area, create_dwelling):
    create_user("admin")
    create_area("A")
    create_area("B")
    create_dwelling("A")
    create_dwelling("B")
    create_dwelling("A")
    chains: dict[str, list[AuditEvent]] = {}
    for event in _events():
        chains.setdefault(event.chain, []).append(event)
    assert {"area:A", "area:B"} <= set(chains)
    for chain, events in chains.items():
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), chain
        assert events[0].prev_hash == "0" * 64
        for before, after in zip(events, events[1:], strict=False):
            assert after.prev_hash == before.hash
        head = db.session.get(AuditChainHead, chain)
        assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)
    assert verify().ok


def _column_values(event_id: int) -> dict:
    table = AuditEvent.__table__
    db.session.remove()  # SQLite: the session's transaction holds the file's write lock
    with db.engine.connect() as conn:
        return dict(conn.execute(sa.select(table).where(table.c.id == event_id)).mappings().one())


def _sql(statement, **params) -> None:
    db.session.remove()
    with db.engine.begin() as conn:
        conn.execute(statement, params)


def test_verify_finds_edits_and_deletions(client, create_user, create_area, create_dwelling):
    create_user("admin")
    create_area("A")
    for _ in range(4):
        create_dwelling("A")
    create_area("B")
    create_dwelling("B")
    chain_a = [e.id for e in _events() if e.chain == "area:A"]
    assert len(chain_a) == 5
    assert verify().ok
    table = AuditEvent.__table__

    middle = _column_values(chain_a[2])
    _sql(table.update().where(table.c.id == chain_a[2]).values(actor_name="mallory"))
    result = verify()
    assert (result.ok, result.first_bad_event_id) == (False, chain_a[2])
    assert "altered" in result.reason
    _sql(table.update().where(table.c.id == chain_a[2]).values(actor_name=middle["actor_name"]))
    assert verify().ok

    second = _column_values(chain_a[1])
    _sql(table.update().where(table.c.id == chain_a[1]).values(details={"rooms": 99}))
    assert verify().first_bad_event_id == chain_a[1]
    _sql(table.update().where(table.c.id == chain_a[1]).values(details=second["details"]))
    assert verify().ok

    _sql(table.delete().where(table.c.id == chain_a[2]))
    result = verify()
    assert (result.ok, result.first_bad_event_id) == (False, chain_a[3])
    _sql(table.insert().values(**middle))
    assert verify().ok

    last = _column_values(chain_a[-1])
    _sql(table.delete().where(table.c.id == chain_a[-1]))
    result = verify()
    assert not result.ok
    assert "area:A" in result.reason
    _sql(table.insert().values(**last))
    assert verify().ok

    # A forger who rewrites one event's hash breaks the next link instead.
    _sql(table.update().where(table.c.id == chain_a[2]).values(actor_name="mallory", hash="f" * 64))
    assert verify().first_bad_event_id == chain_a[2]


def _swap_ids(first: int, second: int) -> None:
    """Renumber two events into each other's place (through a free id)."""
    table = AuditEvent.__table__
    spare = 10**9
    for source, target in ((first, spare), (second, first), (spare, second)):
        _sql(table.update().where(table.c.id == source).values(id=target))


def test_swapping_the_ids_of_two_events_is_detected(
    client, create_user, create_area, create_dwelling
):
    create_area("A")
    create_area("B")
    for _ in range(3):
        create_dwelling("A")
        create_dwelling("B")
    chain_a = [e.id for e in _events() if e.chain == "area:A"]
    chain_b = [e.id for e in _events() if e.chain == "area:B"]
    assert verify().ok
    # Within a chain and across two chains: either way the list order would lie.
    for first, second in ((chain_a[1], chain_a[2]), (chain_a[1], chain_b[2])):
        _swap_ids(first, second)
        result = verify()
        assert not result.ok
        assert result.first_bad_event_id in (first, second), result
        _swap_ids(first, second)
        assert verify().ok


def test_the_trail_is_listed_in_the_order_verify_checks(
    client, create_user, create_area, create_dwelling
):
    auditor = create_user("auditor")
    create_area("A")
    create_area("B")
    for _ in range(3):
        create_dwelling("A")
        create_dwelling("B")
    listed = client.get("/api/v1/audit?page_size=100", headers=auditor["headers"]).json
    ids = [e["id"] for e in listed]
    assert ids == sorted(ids, reverse=True)
    for chain in ("area:A", "area:B"):
        seqs = [e["seq"] for e in reversed(listed) if e["chain"] == chain]
        assert seqs == list(range(1, len(seqs) + 1))


def _run(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ANJUKA_COMMAND, *args],
        env=env,
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


@pytest.fixture
def populated(fresh_database: str, tmp_path: Path):
    """A migrated database with events in two area chains and a user chain; its env and ids."""
    instance = tmp_path / "instance"
    env = command_env(fresh_database, instance)
    upgraded = _run(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    other = create_app(Config(instance_path=instance, database_url=fresh_database, testing=True))
    with other.app_context():
        from anjuka.areas.operations import create_area
        from anjuka.auth.operations import create_user
        from anjuka.dwellings.operations import create_dwelling

        create_user("root", "admin", "long enough password")
        for code in ("X", "Y"):
            area = create_area(code, code, None, {})
            for n in range(3):
                create_dwelling(
                    area, None, {"address": f"{n} {code} Road", "rooms": 1, "usable_area_m2": 10}
                )
        db.session.commit()
        ids = {
            chain: [e.id for e in _events() if e.chain == chain] for chain in ("area:X", "area:Y")
        }
        db.session.remove()
        db.engine.dispose()
    engine = sa.create_engine(Config(database_url=fresh_database).resolved_database_url)
    yield env, ids, engine
    engine.dispose()


def test_the_verify_command_names_the_first_broken_event(populated):
    env, ids, engine = populated
    table = AuditEvent.__table__

    def run_verify():
        return _run(["audit", "verify"], env)

    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
    ok = run_verify()
    assert ok.returncode == 0, ok.stderr
    assert f"intact: {total} events" in ok.stdout
    # Without an anchor it says what it could not see.
    assert "without an anchor" in ok.stdout

    target = ids["area:X"][1]
    with engine.connect() as conn:
        row = dict(conn.execute(sa.select(table).where(table.c.id == target)).mappings().one())
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_events SET actor_name = 'mallory' WHERE id = :id"), {"id": target}
        )
    broken = run_verify()
    assert broken.returncode == 1
    assert f"event {target}:" in broken.stderr
    with engine.begin() as conn:
        conn.execute(
            table.update().where(table.c.id == target).values(actor_name=row["actor_name"])
        )
    assert run_verify().returncode == 0

    with engine.connect() as conn:
        row = dict(conn.execute(sa.select(table).where(table.c.id == target)).mappings().one())
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": target})
    cut = run_verify()
    assert cut.returncode == 1
    assert f"event {ids['area:X'][2]}:" in cut.stderr
    with engine.begin() as conn:
        conn.execute(table.insert().values(**row))
    assert run_verify().returncode == 0

    tail = ids["area:Y"][-1]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": tail})
    truncated = run_verify()
    assert truncated.returncode == 1
    assert "area:Y" in truncated.stderr
    assert f"event {ids['area:Y'][-2]}:" in truncated.stderr


def test_an_anchor_kept_elsewhere_finds_a_rebuilt_chain(
    app, create_user, create_area, create_dwelling, tmp_path
):
    import json

    from anjuka.audit import operations as audit
    from anjuka.cli import audit as audit_command

    create_area("A")
    create_dwelling("A")
    create_dwelling("A")
    runner = app.test_cli_runner()
    taken = runner.invoke(audit_command, ["anchor"])
    assert taken.exit_code == 0, taken.output
    anchor = tmp_path / "anchor.json"
    anchor.write_text(taken.output)
    assert json.loads(taken.output)["chains"]["area:A"]["seq"] == 3

    clean = runner.invoke(audit_command, ["verify", "--anchor", str(anchor)])
    assert clean.exit_code == 0, clean.output
    create_dwelling("A")  # the trail grows after the anchor: still fine
    assert runner.invoke(audit_command, ["verify", "--anchor", str(anchor)]).exit_code == 0

    # Someone with the database rebuilds area A's chain with one event less:
    # every link is consistent again, so only the anchor can tell.
    _sql(AuditEvent.__table__.delete().where(AuditEvent.chain == "area:A"))
    _sql(AuditChainHead.__table__.delete().where(AuditChainHead.chain == "area:A"))
    db.session.expire_all()
    for _ in range(3):
        audit.record("dwelling.create", subject_type="dwelling", subject_id=1, area_code="A")
    db.session.commit()
    assert verify().ok
    rewritten = runner.invoke(audit_command, ["verify", "--anchor", str(anchor)])
    assert rewritten.exit_code == 1
    assert "REWRITTEN: chain area:A: event 3" in rewritten.output
