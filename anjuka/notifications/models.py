"""Webhook subscriptions and the outbox of their deliveries."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.alerts.models import Alert
from anjuka.areas.models import Area
from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime, sql_in
from anjuka.core.time import utcnow


class DeliveryStatus(enum.StrEnum):
    """Where a webhook delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    #: Given up after its retries, or its subscription was deactivated.
    ABANDONED = "abandoned"


class WebhookSubscription(Model):
    """An endpoint that receives the alerts of one area's subtree.

    The signing secret is not stored: it is HMAC(webhook key, ``secret_salt``),
    derived again for each delivery and shown to the admin once, at creation.
    """

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        sa.CheckConstraint("consecutive_failures >= 0", name="failures_not_negative"),
        sa.CheckConstraint("url <> ''", name="url_not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    #: Alert kinds to send; null sends every kind.
    kinds: Mapped[list | None] = mapped_column(sa.JSON)
    secret_salt: Mapped[str] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)

    area: Mapped[Area] = relationship()


class WebhookDelivery(Model):
    """One alert for one subscription: written in the alert's transaction, sent after it.

    The unique (subscription, alert, event) makes "each alert once per
    subscription" a database rule; ``idempotency_key`` travels in a header
    so a receiver can drop the repeat of a delivery whose answer was lost.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "alert_id", "event"),
        sa.CheckConstraint(sql_in("status", DeliveryStatus), name="status_known"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        sa.CheckConstraint(
            f"(status = '{DeliveryStatus.DELIVERED}') = (delivered_at IS NOT NULL)",
            name="delivered_has_time",
        ),
        sa.Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=sa.text(f"status = '{DeliveryStatus.PENDING}'"),
            postgresql_where=sa.text(f"status = '{DeliveryStatus.PENDING}'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_subscriptions.id"))
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id"), index=True)
    event: Mapped[str] = mapped_column(sa.String(32), default="alert.raised")
    idempotency_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: The body, as the alert was when raised.
    payload: Mapped[dict] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)

    subscription: Mapped[WebhookSubscription] = relationship()
    alert: Mapped[Alert] = relationship()
