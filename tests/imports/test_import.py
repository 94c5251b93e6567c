"""``anjuka import``: a synthetic city goes in, its bad rows refused with reasons, reconciled."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from anjuka.alerts.models import Alert
from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.core.time import local_today
from anjuka.dwellings.models import Dwelling, Estate
from anjuka.imports.commands import import_command
from anjuka.imports.importer import run_import
from anjuka.imports.models import ImportReject
from anjuka.imports.synthetic import generate_city
from anjuka.persons.models import Person
from anjuka.persons.operations import find_by_document
from anjuka.residences.models import Residence
from anjuka.stats.models import AreaTotal

KINDS = ("areas", "estates", "dwellings", "residents")


@pytest.fixture(scope="module")
def city_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("city")
    generate_city(folder, scale=0.002, seed=11, export_day=local_today())
    return folder


def _count(model: type, *where: object) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _import_all(app, folder: Path, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    outputs = []
    for kind in KINDS:
        db.session.commit()
        result = app.test_cli_runner().invoke(
            import_command, [kind, str(folder / f"{kind}.csv"), *extra]
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    return outputs


def test_a_city_goes_in_and_reconciles_with_its_manifest(app, city_files: Path):
    manifest = json.loads((city_files / "manifest.json").read_text())
    outputs = _import_all(app, city_files)
    db.session.expire_all()
    rows = manifest["rows"]
    assert _count(Dwelling) == rows["dwellings"]
    assert _count(Estate) == rows["estates"]
    expected = manifest["expected_rejects"]
    refused = Counter(db.session.scalars(sa.select(ImportReject.code)))
    assert dict(refused) == expected
    assert _count(Residence) == rows["residents"] - sum(expected.values())
    current = _count(Residence, Residence.departed_on.is_(None))
    assert current == manifest["current_residents"]
    # The crowding as found: admitted, flagged, alerted, counted in the statistics.
    crowded = set(
        db.session.scalars(
            sa.select(Residence.dwelling_id).where(Residence.override_reason.is_not(None))
        )
    )
    assert len(crowded) == manifest["over_capacity_as_found"] > 0
    alerted = _count(Alert, Alert.kind == "over_occupancy")
    assert alerted == manifest["over_capacity_as_found"]
    totals = db.session.execute(
        sa.select(sa.func.sum(AreaTotal.residents), sa.func.sum(AreaTotal.over_capacity))
    ).one()
    assert tuple(totals) == (current, manifest["over_capacity_as_found"])
    # One summary audit event per import, none per row.
    imports = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action.like("import.%"))
    ).all()
    assert sorted(e.action for e in imports) == sorted(f"import.{k}" for k in KINDS)
    assert all(len(e.details["file_sha256"]) == 64 for e in imports)
    assert _count(AuditEvent) == len(imports)
    # Document numbers went in encrypted and blind-indexed; full-width digits are the same ones.
    person = db.session.scalars(sa.select(Person).limit(1)).one()
    assert find_by_document(person.document_type, person.document_number).id == person.id
    # Phones sealed to their rows (on PostgreSQL the ids are drawn before the COPY).
    with_phone = db.session.scalars(
        sa.select(Person).where(Person.phone_enc.is_not(None)).limit(5)
    ).all()
    assert with_phone
    assert all(p.phone and p.phone[-4:] == p.phone_masked[-4:] for p in with_phone)
    let = db.session.scalars(
        sa.select(Dwelling).where(Dwelling.landlord_phone_enc.is_not(None)).limit(5)
    ).all()
    assert let
    assert all(
        d.landlord_phone and d.landlord_phone[-4:] == d.landlord_phone_masked[-4:] for d in let
    )
    assert "refused rows:" in outputs[-1]
    report = (city_files / "residents.csv.rejects.csv").read_text().splitlines()
    assert report[0] == "line,error,field,message"
    assert len(report) - 1 == sum(expected.values())
    # The same file again changes nothing.
    again = app.test_cli_runner().invoke(
        import_command, ["residents", str(city_files / "residents.csv")]
    )
    assert "imported already" in again.output
    assert _count(Residence) == rows["residents"] - sum(expected.values())


def test_an_interrupted_import_resumes_without_a_row_twice(app, city_files: Path):
    for kind in KINDS[:3]:
        run_import(kind, city_files / f"{kind}.csv")
    calls = []

    def stop_after_two_batches(done: int, size: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_import(
            "residents",
            city_files / "residents.csv",
            batch_size=500,
            progress=stop_after_two_batches,
        )
    db.session.rollback()
    assert _count(Residence) > 0  # two batches are in
    finished = run_import("residents", city_files / "residents.csv", batch_size=500)
    assert finished.skipped > 0
    manifest = json.loads((city_files / "manifest.json").read_text())
    expected = sum(manifest["expected_rejects"].values())
    assert _count(Residence) == manifest["rows"]["residents"] - expected
    assert _count(ImportReject) == expected


def test_gb18030_files_with_full_width_digits(app, tmp_path: Path):
    areas = tmp_path / "areas.csv"
    areas.write_bytes(
        "code,name,parent_code,min_area_per_person_m2\n３３０２,宁波市,,１０\n".encode("gb18030")
    )
    report = run_import("areas", areas)
    assert (report.accepted, dict(report.rejected)) == (1, {})
    dwellings = tmp_path / "dwellings.csv"
    dwellings.write_bytes(
        "address_code,area_code,address,usable_area_m2,rooms\n"
        "Ｄ１,3302,海曙路１号,２０,2\n"
        "D2,9999,无此辖区,20,2\n"
        "D3,3302,没有面积,,2\n".encode("gb18030")
    )
    report = run_import("dwellings", dwellings)
    assert report.accepted == 1
    assert dict(report.rejected) == {"area_not_found": 1, "validation_error": 1}
    assert db.session.scalars(sa.select(Dwelling.address_code)).all() == ["D1"]
    lines = sorted(db.session.scalars(sa.select(ImportReject.line)))
    assert lines == [3, 4]


def test_a_standard_address_code_names_one_dwelling(client, create_area, create_user):
    create_area("AC")
    admin = create_user("admin")
    body = {
        "area_code": "AC",
        "address": "1 Code Road",
        "address_code": "AC-0001",
        "usable_area_m2": 20,
        "rooms": 1,
    }
    assert client.post("/api/v1/dwellings", json=body, headers=admin["headers"]).status_code == 201
    again = client.post(
        "/api/v1/dwellings", json={**body, "address": "2 Code Road"}, headers=admin["headers"]
    )
    assert (again.status_code, again.json["error"]) == (409, "address_code_taken")
