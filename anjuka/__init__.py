"""Anjuka: the registry behind the Anju e-Card (安居e卡)."""

from __future__ import annotations

from flask import Flask

from anjuka.config import Config

__all__ = ["create_app"]


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask application; tests pass their own ``Config``."""
    from anjuka import extensions
    from anjuka.core import errors, keys, limits, security
    from anjuka.domains import register_domains

    app = Flask(__name__, instance_path=str((config or Config.from_env()).instance_path))
    config = config or Config.from_env()
    app.config.update(config.flask_settings())
    app.extensions["anjuka_config"] = config
    extensions.init_app(app, config)
    keys.init_app(app, config)
    errors.init_app(app)
    security.init_app(app)
    limits.init_app(app, config)
    register_domains(app)
    return app
