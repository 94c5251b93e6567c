"""Browser sessions: a strict cookie, CSRF on every change, sign-out revokes."""

from flask.testing import FlaskClient


def sign_in(client: FlaskClient, user: dict) -> dict:
    response = client.post(
        "/api/v1/auth/session", json={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 201, response.json
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert user["token"] not in cookie
    return response.json


def test_a_session_reads_and_changes_only_with_its_csrf_token(
    app, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    create_area("S1")
    estate = create_estate("S1")
    dwelling_id = create_dwelling("S1", estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    browser = app.test_client()
    session = sign_in(browser, manager)
    assert session["role"] == "manager"

    me = browser.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json["name"] == manager["username"]

    arrival = {
        "dwelling_id": dwelling_id,
        "arrived_on": "2026-01-05",
        "person": {
            "document_type": "resident_id",
            "document_number": new_id_number(),
            "name": "李四",
        },
    }
    forged = browser.post("/api/v1/residences", json=arrival)
    assert forged.status_code == 403
    assert forged.json["error"] == "csrf_failed"
    wrong = browser.post("/api/v1/residences", json=arrival, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert browser.get(f"/api/v1/dwellings/{dwelling_id}").json["occupants"] == 0

    done = browser.post(
        "/api/v1/residences", json=arrival, headers={"X-CSRF-Token": session["csrf_token"]}
    )
    assert done.status_code == 201, done.json


def test_signing_out_revokes_the_session_token(app, create_user):
    officer = create_user("officer")
    browser = app.test_client()
    session = sign_in(browser, officer)
    refused = browser.delete("/api/v1/auth/tokens/current")
    assert refused.status_code == 403
    out = browser.delete(
        "/api/v1/auth/tokens/current", headers={"X-CSRF-Token": session["csrf_token"]}
    )
    assert out.status_code == 204
    assert browser.get("/api/v1/auth/me").status_code == 401


def test_a_copied_cookie_dies_when_its_session_signs_out(app, create_user):
    officer = create_user("officer")
    browser = app.test_client()
    session = sign_in(browser, officer)
    copy = app.test_client()
    copy.set_cookie("session", browser.get_cookie("session").value)
    assert copy.get("/api/v1/auth/me").status_code == 200
    elsewhere = app.test_client()
    sign_in(elsewhere, officer)

    signed_out = browser.delete(
        "/api/v1/auth/tokens/current", headers={"X-CSRF-Token": session["csrf_token"]}
    )
    assert signed_out.status_code == 204
    assert copy.get("/api/v1/auth/me").status_code == 401
    # Sessions are independent: the officer's other sign-in lives on.
    assert elsewhere.get("/api/v1/auth/me").status_code == 200


def test_a_bad_password_sets_no_session(app, create_user):
    officer = create_user("officer")
    browser = app.test_client()
    response = browser.post(
        "/api/v1/auth/session", json={"username": officer["username"], "password": "wrong"}
    )
    assert response.status_code == 401
    assert browser.get_cookie("session") is None
    assert browser.get("/api/v1/auth/me").status_code == 401
