"""The domain packages, registered in dependency order."""

from __future__ import annotations

from flask import Flask

API_PREFIX = "/api/v1"


def register_domains(app: Flask) -> None:
    """Register every domain's blueprint, commands and signal handlers."""
    from anjuka.areas import api as areas_api
    from anjuka.audit import api as audit_api
    from anjuka.auth import api as auth_api
    from anjuka.auth import operations as auth_operations
    from anjuka.auth.scope import load_scope
    from anjuka.cards import api as cards_api
    from anjuka.cards import daemon_api as card_jobs_api
    from anjuka.cards import operations as card_operations
    from anjuka.cards.readers import READER_TOKEN_PREFIX, resolve_reader_token
    from anjuka.core.scope import set_scope_loader
    from anjuka.core.security import register_token_resolver
    from anjuka.dwellings import api as dwellings_api
    from anjuka.dwellings.operations import count_occupants_with
    from anjuka.residences import api as residences_api
    from anjuka.residences.occupancy import count_occupants

    api = app.extensions["anjuka_api"]
    register_token_resolver(auth_operations.USER_TOKEN_PREFIX, auth_operations.resolve_user_token)
    set_scope_loader(load_scope)
    count_occupants_with(count_occupants)
    for module in (auth_api, areas_api, dwellings_api, residences_api, audit_api):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)

    # Cards: readers authenticate with their own tokens; a departure revokes the card.
    register_token_resolver(READER_TOKEN_PREFIX, resolve_reader_token)
    card_operations.connect()
    for module in (cards_api, card_jobs_api):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)

    # Transfers: a departure completes the move another desk asked for.
    from anjuka.transfers import api as transfers_api
    from anjuka.transfers import operations as transfer_operations

    transfer_operations.connect()
    api.register_blueprint(transfers_api.blp, url_prefix=API_PREFIX)

    # Alerts, verifications and webhooks build on every domain above.
    from anjuka.alerts import api as alerts_api
    from anjuka.alerts import handlers as alert_handlers
    from anjuka.notifications import api as webhooks_api
    from anjuka.notifications import operations as notifications
    from anjuka.verifications import api as verifications_api

    alert_handlers.connect()
    notifications.connect(app)
    for module in (alerts_api, verifications_api, webhooks_api):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)

    # Statistics keep their figures as the events above happen.
    from anjuka.stats import api as stats_api
    from anjuka.stats import operations as stats

    stats.connect()
    api.register_blueprint(stats_api.blp, url_prefix=API_PREFIX)

    # A person's data export for a lawful request (docs/privacy.md).
    from anjuka.personal_data import api as personal_data_api

    api.register_blueprint(personal_data_api.blp, url_prefix=API_PREFIX)

    # Legacy imports keep their progress and refusals in tables of their own.
    from anjuka.imports import models as import_models

    del import_models  # imported for its tables

    # Health, readiness and metrics for operators (outside the API and its document).
    from anjuka.ops import api as ops_api

    ops_api.check_metrics_allow(app)
    app.register_blueprint(ops_api.blp)

    # The pages, last: they call every domain above.
    from anjuka.web import (
        account,
        admin,
        audit,
        dashboard,
        desk,
        pages,
        patrol,
        supervise,
        transfers,
    )

    # Their routes register on the pages' blueprint when imported.
    del account, admin, audit, dashboard, desk, patrol, supervise, transfers
    pages.init_app(app)
    app.register_blueprint(pages.blp)
