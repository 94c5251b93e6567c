"""``/healthz``, ``/readyz`` and ``/metrics``: outside the API, for load balancers and Prometheus.

``/healthz`` says the process answers; ``/readyz`` that it can serve: the
database answers and its schema is at the head of this code's migrations
(503 otherwise, so a load balancer sends nothing to a host whose database
is gone or not yet upgraded). Both are public and hold no data.
``/metrics`` answers only the addresses in ``ANJUKA_METRICS_ALLOW``
(loopback by default), as the app sees the client (``ProxyFix`` behind
trusted proxies); anyone else gets 404, as for a page that is not there.
"""

from __future__ import annotations

import functools
import ipaddress

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from anjuka.core.db import db
from anjuka.core.errors import AppError, NotFound
from anjuka.core.limits import client_address
from anjuka.core.security import public
from anjuka.ops.metrics import scrape_registry

blp = Blueprint("ops", __name__)


class NotReady(AppError):
    status = 503
    code = "not_ready"


@functools.cache
def migration_heads(directory: str) -> frozenset[str]:
    """The head revisions of the migrations shipped with this code."""
    config = current_app.extensions["migrate"].migrate.get_config(directory)
    return frozenset(ScriptDirectory.from_config(config).get_heads())


@blp.route("/healthz")
@public
def healthz() -> Response:
    """The process is alive and answers."""
    return jsonify({"status": "ok"})


@blp.route("/readyz")
@public
def readyz() -> Response:
    """The database answers and its migrations are those of this code; else 503 ``not_ready``."""
    heads = migration_heads(current_app.extensions["migrate"].directory)
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        raise NotReady("The database does not answer.", database="unreachable") from None
    try:
        current = frozenset(
            db.session.scalars(sa.text("SELECT version_num FROM alembic_version")).all()
        )
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        current = frozenset()
    if current != heads:
        raise NotReady(
            "The database's migrations are not those of this code: run `anjuka db upgrade`.",
            database="ok",
            migrations={"database": sorted(current), "code": sorted(heads)},
        )
    return jsonify({"status": "ready", "database": "ok", "migrations": sorted(heads)})


def check_metrics_allow(app: Flask) -> None:
    """Refuse to start with an ``ANJUKA_METRICS_ALLOW`` entry that is not an address or network."""
    for entry in app.extensions["anjuka_config"].metrics_allow:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            message = f"ANJUKA_METRICS_ALLOW: {entry!r} is not an address or network"
            raise ValueError(message) from None


def _may_read_metrics(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    allowed = current_app.extensions["anjuka_config"].metrics_allow
    return any(client in ipaddress.ip_network(entry, strict=False) for entry in allowed)


@blp.route("/metrics")
@public
def metrics() -> Response:
    """Prometheus text for the configured addresses; 404 for everyone else."""
    if not _may_read_metrics(client_address()):
        raise NotFound("No such page.")
    return Response(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
