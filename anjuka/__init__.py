"""Anjuka: the registry behind the Anju e-Card (安居e卡)."""

from __future__ import annotations

from flask import Flask

from anjuka.config import Config

__all__ = ["create_app"]


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask application; tests pass their own ``Config``."""
    from anjuka.core import db, dumping, errors, keys, limits, metrics, security, transactions
    from anjuka.core.api import Api
    from anjuka.domains import register_domains

    config = config or Config.from_env()
    app = Flask(__name__, instance_path=str(config.instance_path))
    app.config.update(config.flask_settings())
    app.extensions["anjuka_config"] = config
    db.init_app(app, config)
    app.extensions["anjuka_api"] = Api(app)
    keys.init_app(app, config)
    errors.init_app(app)
    metrics.init_app(app)  # request counts, latencies and the JSON request log
    security.init_app(app)
    limits.init_app(app, config)
    register_domains(app)
    dumping.init_app(app)  # after every view: it wraps each one
    transactions.init_app(app)  # last: it wraps every view registered above
    return app
