"""The operator's command works from any working directory, against either database."""

from __future__ import annotations

import subprocess
from pathlib import Path

from registry_helpers import ANJUKA_COMMAND, command_env

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db


def _run(args: list[str], env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ANJUKA_COMMAND, *args],
        env=env,
        cwd="/tmp",
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_users_create_from_any_directory(fresh_database: str, tmp_path: Path):
    instance = tmp_path / "instance"
    env = command_env(fresh_database, instance)
    upgraded = _run(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (instance / "keys.json").exists()

    app = create_app(Config(instance_path=instance, database_url=fresh_database, testing=True))
    with app.app_context():
        from anjuka.areas.operations import create_area
        from anjuka.dwellings.operations import create_dwelling, create_estate

        area = create_area("K1", "K1", None, {})
        estate = create_estate(area, "Estate K", None, None)
        other = create_estate(area, "Estate L", None, None)
        mine = create_dwelling(
            area, estate, {"address": "1 K Road", "rooms": 1, "usable_area_m2": 9}
        )
        create_dwelling(area, other, {"address": "2 K Road", "rooms": 1, "usable_area_m2": 9})
        db.session.commit()
        estate_id, mine_id = estate.id, mine.id
        db.session.remove()

    password = "stdin password 123"
    created = _run(
        [
            "users",
            "create",
            "desk1",
            "--role",
            "manager",
            "--scope",
            f"estate:{estate_id}",
            "--password-stdin",
        ],
        env,
        stdin=password + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert "desk1" in created.stdout
    assert password not in created.stdout + created.stderr

    client = app.test_client()
    with app.app_context():
        token = client.post("/api/v1/auth/tokens", json={"username": "desk1", "password": password})
        assert token.status_code == 201, token.json
        headers = {"Authorization": f"Bearer {token.json['token']}"}
        assert client.get("/api/v1/auth/me", headers=headers).json["role"] == "manager"
        assert [d["id"] for d in client.get("/api/v1/dwellings", headers=headers).json] == [mine_id]
        db.session.remove()

    again = _run(
        ["users", "create", "desk1", "--role", "manager", "--password-stdin"], env, "x" * 12
    )
    assert again.returncode != 0
    assert "user_exists" in again.stderr
    wrong_scope = _run(
        [
            "users",
            "create",
            "desk2",
            "--role",
            "officer",
            "--scope",
            f"estate:{estate_id}",
            "--password-stdin",
        ],
        env,
        "y" * 12,
    )
    assert wrong_scope.returncode != 0
    assert "invalid_scope" in wrong_scope.stderr
    generated = _run(["users", "create", "boss", "--role", "admin"], env)
    assert generated.returncode == 0, generated.stderr
    assert "password: " in generated.stdout

    verified = _run(["audit", "verify"], env)
    assert verified.returncode == 0, verified.stderr
    with app.app_context():
        db.engine.dispose()
