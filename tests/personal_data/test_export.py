"""A person's data export: everything held, the access report, as JSON and PDF; audited."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from anjuka.audit.models import AuditEvent
from anjuka.audit.operations import verify
from anjuka.core.db import db
from anjuka.core.time import local_today
from anjuka.personal_data.commands import persons, retention

LOOKUP = "/api/v1/persons/lookup"
NAME = "王小明"


@pytest.fixture
def subject(client, create_area, create_dwelling, create_user, arrive, new_id_number):
    """A person who moved once, was looked up (before and after arriving) and revealed."""
    create_area("EX")
    first, second = create_dwelling("EX"), create_dwelling("EX")
    supervisor = create_user("supervisor", ["area:EX"])
    officer = create_user("officer", ["area:EX"])
    number = new_id_number()
    today = local_today()
    missed = client.post(LOOKUP, json={"document_number": number}, headers=officer["headers"])
    assert missed.status_code == 404
    came = arrive(
        supervisor["headers"],
        first,
        number=number,
        name=NAME,
        phone="13912345678",
        arrived_on=(today - timedelta(days=40)).isoformat(),
    ).json
    moved = arrive(
        supervisor["headers"],
        second,
        number=number,
        name=NAME,
        move=True,
        arrived_on=(today - timedelta(days=5)).isoformat(),
    )
    assert moved.status_code == 201, moved.json
    found = client.post(LOOKUP, json={"document_number": number}, headers=officer["headers"])
    assert found.status_code == 200
    shown = client.get(
        f"/api/v1/persons/{came['person_id']}?reveal=true", headers=supervisor["headers"]
    )
    assert shown.json["name"] == NAME
    return {
        "number": number,
        "person_id": came["person_id"],
        "supervisor": supervisor,
        "officer": officer,
        "create_user": create_user,
    }


def _export(app, *args: str):  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(persons, ["export", *args])
    assert result.exit_code == 0, result.output
    return result


def test_the_export_holds_everything_and_who_saw_it(app, subject, tmp_path: Path):
    pdf = tmp_path / "export.pdf"
    result = _export(app, "--document-number", subject["number"], "--pdf", str(pdf))
    export = json.loads(result.output)

    person = export["person"]
    assert (person["document_number"], person["name"]) == (subject["number"], NAME)
    assert person["phone"] == "13912345678"
    assert [r["departed_on"] is None for r in export["residences"]] == [False, True]
    assert export["cards"] == []
    access = export["access_report"]
    actions = [(e["action"], e["actor"], e["outcome"]) for e in access]
    assert ("person.lookup", subject["officer"]["username"], "not_found") in actions
    assert ("person.lookup", subject["officer"]["username"], "found") in actions
    assert ("person.reveal", subject["supervisor"]["username"], None) in actions
    assert all(e["at"] for e in access)

    # The PDF says the same, in Chinese characters, and is the owner's only.
    assert pdf.stat().st_mode & 0o077 == 0
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert NAME in text
    assert subject["number"] in text
    assert "person.reveal" in text

    # Audited: the export names the person, never the number; the next one lists it.
    [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "person.export"))
    assert event.subject_id == str(subject["person_id"])
    assert subject["number"] not in json.dumps(event.details)
    again = json.loads(_export(app, "--document-number", subject["number"]).output)
    assert "person.export" in [e["action"] for e in again["access_report"]]
    assert verify().ok


def test_auditors_and_admins_export_over_the_api_others_may_not(client, subject):
    auditor = subject["create_user"]("auditor")
    body = {"document_number": subject["number"]}

    answer = client.post("/api/v1/persons/export", json=body, headers=auditor["headers"])
    assert answer.status_code == 200, answer.json
    assert answer.json["person"]["name"] == NAME
    pdf = client.post("/api/v1/persons/export/pdf", json=body, headers=auditor["headers"])
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")

    for who in (subject["supervisor"], subject["officer"]):
        refused = client.post("/api/v1/persons/export", json=body, headers=who["headers"])
        assert refused.status_code == 403
    exports = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "person.export").order_by(AuditEvent.id)
    ).all()
    assert [e.chain for e in exports] == [f"user:{auditor['id']}"] * 2
    assert [e.details["format"] for e in exports] == ["json", "pdf"]


def test_an_anonymised_person_has_nothing_left_to_export(app, client, subject):
    supervisor = subject["supervisor"]
    history = client.get(
        f"/api/v1/persons/{subject['person_id']}/residences", headers=supervisor["headers"]
    ).json
    current = next(r for r in history if r["current"])
    ended = client.post(
        f"/api/v1/residences/{current['id']}/departure",
        json={"departed_on": local_today().isoformat()},
        headers=supervisor["headers"],
    )
    assert ended.status_code == 200, ended.json
    later = (local_today() + timedelta(days=4 * 366)).isoformat()
    assert app.test_cli_runner().invoke(retention, ["run", "--as-of", later]).exit_code == 0

    refused = app.test_cli_runner().invoke(
        persons, ["export", "--document-number", subject["number"]]
    )
    assert refused.exit_code == 1
    assert "person_not_found" in refused.output
