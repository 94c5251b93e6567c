"""``anjuka gen-city``: a deterministic synthetic city whose files an import can reconcile."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from anjuka.core.errors import InvalidInput
from anjuka.imports.commands import gen_city
from anjuka.imports.formats import COLUMNS
from anjuka.imports.synthetic import generate_city, rows
from anjuka.persons.identity import parse_document

DAY = date(2026, 6, 10)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_same_seed_writes_the_same_city_and_another_seed_another(tmp_path: Path):
    first = generate_city(tmp_path / "a", scale=0.002, seed=5, export_day=DAY)
    generate_city(tmp_path / "b", scale=0.002, seed=5, export_day=DAY)
    generate_city(tmp_path / "c", scale=0.002, seed=6, export_day=DAY)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["residents.csv"] != _digest(tmp_path / "c")["residents.csv"]
    assert first.rows["areas"] == 1 + 10 + 10 * 1 + 10 * 1  # city, districts, stations, communities
    for kind in ("areas", "estates", "dwellings", "landlords", "residents", "cards"):
        header = (tmp_path / "a" / f"{kind}.csv").read_text().splitlines()[0]
        assert header.split(",") == list(COLUMNS[kind])


def test_the_city_is_ningbo_shaped(tmp_path: Path):
    manifest = generate_city(tmp_path, scale=0.002, seed=1, export_day=DAY)
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["rows"] == dict(manifest.rows)
    dwellings = list(rows(tmp_path / "dwellings.csv"))
    rooms = sum(int(d["rooms"]) for d in dwellings)
    assert 0.002 * 2_310_000 <= rooms < 0.002 * 2_310_000 + 11  # rooms to the count
    assert abs(manifest.current_residents - 0.002 * 3_520_000) < 0.1 * 0.002 * 3_520_000
    assert {"illegal", "not_for_rent", "rentable"} == set(manifest.dwellings_by_status)
    assert manifest.over_capacity_as_found > 0
    [city] = [a for a in rows(tmp_path / "areas.csv") if not a["parent_code"]]
    assert (city["min_area_per_person_m2"], city["area_basis"], city["minors_count"]) == (
        "10",
        "building",
        "false",
    )
    villages = [a for a in rows(tmp_path / "areas.csv") if a["area_basis"] == "usable"]
    assert villages
    assert all(v["min_area_per_person_m2"] == "4" for v in villages)


def test_every_document_is_valid_except_the_rows_meant_to_be_refused(tmp_path: Path):
    manifest = generate_city(tmp_path, scale=0.002, seed=3, export_day=DAY)
    invalid, full_width, passports = 0, 0, 0
    for row in rows(tmp_path / "residents.csv"):
        number = row["document_number"]
        full_width += any("０" <= ch <= "９" for ch in number)
        passports += row["document_type"] == "passport"
        try:
            parsed = parse_document(row["document_type"], number)
        except InvalidInput:
            invalid += 1
            continue
        if parsed.birth_date is not None:
            assert parsed.birth_date.isoformat() == row["birth_date"]
    assert invalid == manifest.rejects["invalid_id_number"] > 0
    assert full_width == manifest.full_width_rows > 0
    assert passports > 0


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_the_command_writes_in_the_encoding_asked_for(tmp_path: Path, encoding: str):
    result = CliRunner().invoke(
        gen_city,
        ["--scale", "0.001", "--seed", "2", "--out", str(tmp_path), "--encoding", encoding],
    )
    assert result.exit_code == 0, result.output
    assert "residents:" in result.output
    text = (tmp_path / "areas.csv").read_bytes().decode(encoding)
    assert "宁波市" in text
    bad = CliRunner().invoke(gen_city, ["--scale", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0
