"""The patrol laptop: fetch a bundle, check simulated cards with no network, upload later."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cardkit import new_uid
from werkzeug.serving import make_server

from anjuka.core.db import db
from anjuka.core.time import utcnow
from anjuka.verifications.models import Inspection
from cardreader import patrol
from cardreader.cli import main as cardreader_main
from cardreader.offline import BundleError, BundleExpiredError, BundleSignatureError, parse_time
from cardreader.protocol.card import write_record
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.memory import MemoryReader


def chip_with(card) -> MemoryReader:  # type: ignore[no-untyped-def]
    """A simulated card of the issued type and UID, written with the job's keys."""
    sim_type = SimCpuCard if card.card_type == "cpu" else SimMifareCard
    reader = MemoryReader(card=sim_type(uid=bytes.fromhex(card.uid)))
    with reader.wait_for_card(1) as connection:
        write_record(connection, card.keys, card.record, card.card_type)
    return reader


def read_with(reader: MemoryReader, store: patrol.PatrolStore, **kw: object):  # type: ignore[no-untyped-def]
    with reader.wait_for_card(1) as connection:
        return patrol.check_card(store, connection, **kw)


@pytest.fixture
def beat(client, create_area, create_dwelling, create_user, arrive, card_desk, tmp_path: Path):
    """An officer of area B, two residents with cards (CPU and MIFARE), a patrol store."""
    create_area("B")
    supervisor = create_user("supervisor", ["area:B"])
    dwelling = create_dwelling("B", usable=40, rooms=2)
    desk = card_desk(supervisor["headers"], "B")
    cards = []
    for card_type in ("cpu", "mifare1k"):
        residence = arrive(supervisor["headers"], dwelling)
        uid = new_uid(4)  # a MIFARE Classic 1K's UID is 4 bytes; the CPU card's may be
        cards.append(desk.issue(residence.json["id"], card_type=card_type, uid=uid))
    officer = create_user("officer", ["area:B"])

    def get(path: str):  # type: ignore[no-untyped-def]
        response = client.get(path, headers=officer["headers"])
        return response.status_code, response.json

    def post(path: str, body: dict):  # type: ignore[no-untyped-def]
        response = client.post(path, json=body, headers=officer["headers"])
        return response.status_code, response.json

    return {
        "officer": officer,
        "desk": desk,
        "dwelling": dwelling,
        "cards": cards,
        "store": patrol.PatrolStore(tmp_path / "patrol"),
        "get": get,
        "post": post,
    }


def test_check_offline_then_upload(client, beat):
    store, cpu, mifare = beat["store"], *beat["cards"]
    state = patrol.fetch(store, beat["get"])
    assert store.trust_file.exists()
    assert state.revoked == set()

    result, entry = read_with(chip_with(cpu), store, dwelling_id=beat["dwelling"], headcount=2)
    assert (result.result, result.card_no) == ("valid", cpu.card_no)
    assert read_with(chip_with(mifare), store)[0].result == "valid"

    # Online again: a revocation comes in a delta; then the same card reads revoked.
    beat["desk"].revoke(mifare.card_no, "lost")
    state = patrol.fetch(store, beat["get"])
    assert state.revoked == {mifare.card_no}
    assert len(store.bundles()) == 2
    assert read_with(chip_with(mifare), store)[0].result == "revoked"

    # A record copied onto another chip.
    copy = SimCpuCard()
    reader = MemoryReader(card=copy)
    with reader.wait_for_card(1) as connection:
        write_record(
            connection,
            {"transport_key": "ff" * 16, "write_key": "11" * 16, "internal_key": "22" * 16},
            cpu.record,
            "cpu",
        )
    assert read_with(reader, store)[0].result == "forged"

    queued = store.queued()
    assert [e["offline_result"] for e in queued] == ["valid", "valid", "revoked", "forged"]
    assert queued[0]["client_id"] == entry["client_id"]

    report = patrol.upload(store, beat["post"])
    assert (report.uploaded, report.rejected, report.remaining) == (4, 0, 0)
    assert store.queued() == []
    db.session.expire_all()
    inspections = db.session.scalars(sa.select(Inspection).order_by(Inspection.id)).all()
    assert [i.offline for i in inspections] == [True] * 4
    assert [i.offline_result for i in inspections] == ["valid", "valid", "revoked", "forged"]
    # The server judges as of the check: the MIFARE card was still good the first time.
    assert [i.result for i in inspections] == ["valid", "valid", "revoked", "clone_suspected"]
    assert inspections[0].observed_headcount == 2

    # An answer lost on the way: the queue is sent again, recorded once.
    store.replace_queue(queued)
    assert patrol.upload(store, beat["post"]).uploaded == 4
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Inspection)) == 4


def test_a_stale_bundle_refuses_before_the_card_is_read(beat):
    store, cpu = beat["store"], beat["cards"][0]
    state = patrol.fetch(store, beat["get"])
    with pytest.raises(BundleExpiredError):
        read_with(chip_with(cpu), store, now=state.expires_at + timedelta(seconds=1))
    assert store.queued() == []


def test_uploads_wait_out_an_outage_and_set_aside_refusals(beat):
    store, cpu = beat["store"], beat["cards"][0]
    patrol.fetch(store, beat["get"])
    read_with(chip_with(cpu), store)
    read_with(chip_with(cpu), store)

    def offline(path: str, body: dict):  # type: ignore[no-untyped-def]
        raise OSError("network unreachable")

    assert patrol.upload(store, offline).remaining == 2
    broken = store.queued()
    broken[0]["uid"] = "not hex"
    store.replace_queue(broken)
    report = patrol.upload(store, beat["post"])
    assert (report.uploaded, report.rejected, report.remaining) == (1, 1, 0)
    [refused] = [json.loads(line) for line in store.rejected_file.read_text().splitlines()]
    assert refused["rejected"]["status"] == 422


def test_a_bundle_not_signed_by_the_pinned_key_is_refused(beat):
    store = beat["store"]
    patrol.fetch(store, beat["get"])
    status, bundle = beat["get"]("/api/v1/offline-bundle")
    bundle["revoked"] = ["AJ000000017"]
    with pytest.raises(BundleSignatureError):
        store.add_bundle(bundle)
    assert len(store.bundles()) == 1


@pytest.fixture
def server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served over real HTTP on 127.0.0.1, in a thread."""
    db.session.commit()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_the_command_line_over_http(beat, server, tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    db.session.commit()  # SQLite: the server's threads need the write lock
    token = beat["officer"]["token"]
    store_dir = tmp_path / "cli-store"
    args = ["--store", str(store_dir)]
    assert patrol.main([*args, "fetch", "--server", server, "--token", token]) == 0
    assert "bundle good until" in capsys.readouterr().out

    store = patrol.PatrolStore(store_dir)
    read_with(chip_with(beat["cards"][0]), store)
    db.session.commit()
    assert patrol.main([*args, "upload", "--server", server, "--token", token]) == 0
    assert "1 uploaded, 0 refused, 0 still queued" in capsys.readouterr().out
    assert patrol.main([*args, "upload", "--server", server]) == 2

    # The desk daemon's command hands the patrol commands over.
    empty = tmp_path / "empty"
    assert cardreader_main(["verify", "--store", str(empty)]) == 1
    assert "no offline bundle yet" in capsys.readouterr().err
    script = Path(sys.executable).parent / "anjuka-cardreader"
    done = subprocess.run(
        [str(script), "verify", "--store", str(empty)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "run 'anjuka-patrol fetch' while online" in done.stderr
    expires = parse_time(store.bundles()[-1]["expires_at"])
    assert expires > utcnow()


def test_the_patrol_refuses_the_orphaned_chip_of_a_rebound_issuance(beat, arrive):
    """Chip A got the record and kept it; the job went to chip B. The laptop refuses A."""
    store, desk = beat["store"], beat["desk"]
    queued = desk.queue(arrive(desk.desk_headers, beat["dwelling"]).json["id"])
    first, second = new_uid(4), new_uid(4)
    kept = desk.bind(queued["job_id"], first, "mifare1k")
    issued = desk.bind(queued["job_id"], second, "mifare1k")
    desk.report(queued["job_id"], outcome="done", uid=second, record=issued.hex())
    assert desk.card(queued["card_no"])["status"] == "active"  # on the second chip

    # The first chip was written, whole, before the tear: it holds its record.
    orphan = SimMifareCard(uid=bytes.fromhex(first))
    with MemoryReader(card=orphan).wait_for_card(1) as connection:
        write_record(
            connection,
            {"transport_key": "ff" * 6, "key_a": b"ANJUKA".hex(), "key_b": "a1b2c3d4e5f6"},
            kept,
            "mifare1k",
        )
    patrol.fetch(store, beat["get"])
    result, entry = read_with(MemoryReader(card=orphan), store)
    assert (result.result, result.reason, result.card_no) == (
        "unknown",
        "never_activated",
        queued["card_no"],
    )
    assert entry["offline_result"] == "unknown"
    real = SimMifareCard(uid=bytes.fromhex(second))
    with MemoryReader(card=real).wait_for_card(1) as connection:
        write_record(
            connection,
            {"transport_key": "ff" * 6, "key_a": b"ANJUKA".hex(), "key_b": "a1b2c3d4e5f6"},
            issued,
            "mifare1k",
        )
    assert read_with(MemoryReader(card=real), store)[0].result == "valid"
    for card in beat["cards"]:
        assert read_with(chip_with(card), store)[0].result == "valid"


def test_a_chain_of_the_old_format_is_replaced_by_a_full_bundle(beat):
    """A laptop upgraded with format-1 bundles kept fetches a full one, not a delta on them."""
    store = beat["store"]
    patrol.fetch(store, beat["get"])
    old = store.bundles()
    old[0]["format"] = 1
    store.bundles_file.write_text(json.dumps(old))
    with pytest.raises(BundleError, match="format 2; fetch a fresh one"):
        store.revocation_list()
    asked: list[str] = []

    def get(path: str):  # type: ignore[no-untyped-def]
        asked.append(path)
        return beat["get"](path)

    state = patrol.fetch(store, get)
    assert asked == ["/api/v1/offline-bundle"]
    assert [b["format"] for b in store.bundles()] == [2]
    assert state.withdrawn == set()
