"""The bare reference endpoints of ``benchmarks/run``: Flask, psycopg, one statement each.

Served by gunicorn with the shipped settings (benchmarks/gunicorn_bare.py)
on the benchmark's database (``ANJUKA_DATABASE_URL``), one connection per
worker thread:

* ``POST /verify`` ``{"card_no": ...}``: the one indexed query a check by
  card number needs (the card by its unique number, its residence, person
  and dwelling), answered as JSON;
* ``POST /arrive`` ``{"dwelling_id": ..., "document": ...}``: one row
  inserted into ``bench_arrivals`` and committed.
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, jsonify, request

app = Flask(__name__)
_local = threading.local()

VERIFY_SQL = """
SELECT c.status, c.expires_on, r.departed_on, r.dwelling_id, p.name, d.address
FROM cards c
JOIN residences r ON r.id = c.residence_id
JOIN persons p ON p.id = r.person_id
JOIN dwellings d ON d.id = r.dwelling_id
WHERE c.card_no = %s
"""

ARRIVE_SQL = "INSERT INTO bench_arrivals (dwelling_id, document) VALUES (%s, %s) RETURNING id"


def connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        url = os.environ["ANJUKA_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        conn = _local.conn = psycopg.connect(url)
    return conn


@app.get("/ready")
def ready():  # noqa: ANN201
    return {"ok": True}


@app.post("/verify")
def verify():  # noqa: ANN201
    conn = connection()
    row = conn.execute(VERIFY_SQL, (request.get_json()["card_no"],)).fetchone()
    conn.commit()
    if row is None:
        return jsonify(result="unknown"), 201
    status, expires_on, departed_on, dwelling_id, name, address = row
    return jsonify(
        result="valid" if status == "active" and departed_on is None else "invalid",
        expires_on=expires_on.isoformat() if expires_on else None,
        dwelling_id=dwelling_id,
        name=name,
        address=address,
    ), 201


@app.post("/arrive")
def arrive():  # noqa: ANN201
    body = request.get_json()
    conn = connection()
    (new_id,) = conn.execute(ARRIVE_SQL, (body["dwelling_id"], body["document"])).fetchone()
    conn.commit()
    return jsonify(id=new_id), 201
