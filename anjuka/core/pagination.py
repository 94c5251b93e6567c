"""Pagination for list endpoints (flask-smorest's page/page_size and X-Pagination)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_smorest.pagination import PaginationParameters

from anjuka.core.db import db


def paginate(stmt: sa.Select, pagination_parameters: PaginationParameters) -> list[Any]:
    """Run ``stmt`` for the requested page and report the total to flask-smorest."""
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
    )
    pagination_parameters.item_count = total
    page_size = pagination_parameters.page_size
    offset = (pagination_parameters.page - 1) * page_size
    return list(db.session.scalars(stmt.limit(page_size).offset(offset)))
