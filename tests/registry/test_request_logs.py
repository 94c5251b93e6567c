"""The JSON request log in process, every logger at DEBUG: a line per request, no personal data."""

from __future__ import annotations

import json
import logging

from registry_helpers import today

from anjuka.core.logs import JsonFormatter

SECRETS = {"name": "上官婉儿", "phone": "13755554444"}


def test_every_request_leaves_one_json_line_and_no_personal_data(caplog, client, world, card_desk):
    caplog.set_level(logging.DEBUG)
    number = world.new_number()
    desk = card_desk(world.headers("admin"), "RA")
    caplog.clear()  # from here on: one resident's lifecycle, every record kept
    headers = {**world.headers("manager"), "X-Request-Id": "logged-arrival-01"}
    arrival = client.post(
        "/api/v1/residences",
        json={
            "dwelling_id": world.da,
            "arrived_on": today().isoformat(),
            "person": {
                "document_type": "resident_id",
                "document_number": number,
                "name": SECRETS["name"],
                "phone": SECRETS["phone"],
            },
        },
        headers=headers,
    )
    assert arrival.status_code == 201, arrival.json
    revealed = client.get(
        f"/api/v1/residences/{arrival.json['id']}?reveal=true", headers=world.headers("admin")
    )
    assert revealed.status_code == 200
    assert number in revealed.get_data(as_text=True)
    card = desk.issue(arrival.json["id"])  # the whole card job, the daemon's side too
    checked = client.post(
        "/api/v1/verifications", json={"card_no": card.card_no}, headers=world.headers("officer")
    )
    assert checked.json["result"] == "valid", checked.json
    departed = client.post(
        f"/api/v1/residences/{arrival.json['id']}/departure",
        json={"departed_on": today().isoformat()},
        headers=world.headers("manager"),
    )
    assert departed.status_code == 200, departed.json

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    text = "\n".join(lines)
    for what, value in {**SECRETS, "document number": number}.items():
        assert value not in text, f"the {what} is in the logs"
    entries = [json.loads(line) for line in lines]
    requests = [e for e in entries if e["logger"] == "anjuka.requests"]
    assert len(requests) >= 8  # arrival, reveal, the card job's round trips, check, departure
    first = next(e for e in requests if e.get("request_id") == "logged-arrival-01")
    assert first["method"] == "POST"
    assert first["endpoint"] == "residences.register_arrival"
    assert first["status"] == 201
    assert first["duration_ms"] > 0
    assert all(e["request_id"] for e in requests)
