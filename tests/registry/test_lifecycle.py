"""Arrival until full, dwelling_full, departure frees the place."""

from datetime import date


def test_arrivals_until_full_then_departure_frees_a_place(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    create_area("C1", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", usable=20, rooms=2, estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])

    residence_ids = []
    for _ in range(4):
        response = arrive(manager["headers"], dwelling_id)
        assert response.status_code == 201, response.json
        residence_ids.append(response.json["id"])
        assert response.json["person_id"] > 0

    refused = arrive(manager["headers"], dwelling_id)
    assert refused.status_code == 409
    assert refused.json["error"] == "dwelling_full"
    assert refused.json["capacity"] == 4
    assert refused.json["occupants"] == 4

    dwelling = client.get(f"/api/v1/dwellings/{dwelling_id}", headers=manager["headers"]).json
    assert (dwelling["capacity"], dwelling["occupants"]) == (4, 4)

    departed = client.post(
        f"/api/v1/residences/{residence_ids[0]}/departure",
        json={"departed_on": date.today().isoformat()},
        headers=manager["headers"],
    )
    assert departed.status_code == 200, departed.json
    assert departed.json["departed_on"] == date.today().isoformat()
    assert arrive(manager["headers"], dwelling_id).status_code == 201


def test_document_numbers_are_masked_for_a_manager(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    create_area("C1")
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    response = arrive(manager["headers"], dwelling_id, number="11010519491231002X")
    assert response.status_code == 201
    person = response.json["person"]
    assert person["document_number"] == "1101**********002X"
    assert person["document_masked"] is True
    assert "11010519491231002X" not in response.get_data(as_text=True)
    refused = client.get(
        f"/api/v1/residences/{response.json['id']}?reveal=true", headers=manager["headers"]
    )
    assert refused.status_code == 403
