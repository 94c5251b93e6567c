"""Webhook subscriptions, the delivery outbox and the worker that empties it.

An alert's deliveries are rows written in the alert's own transaction (the
outbox): if the alert rolls back, nothing is sent; if it commits, the worker
sends it later, so a slow or dead receiver never holds up the request that
raised the alert. The worker claims due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several workers share the queue), puts a short lease on them,
commits, sends outside any transaction, and records the outcome. A worker
that dies mid-send leaves the lease to expire and the row is sent again
with the same ``Idempotency-Key``: receivers drop the repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa
from flask import Flask

from anjuka.alerts.models import Alert
from anjuka.areas.models import Area
from anjuka.audit import operations as audit
from anjuka.core.db import db
from anjuka.core.errors import Conflict
from anjuka.core.keys import keyring
from anjuka.core.security import Identity
from anjuka.core.time import utcnow
from anjuka.core.transactions import checkpoint
from anjuka.notifications.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

log = logging.getLogger(__name__)

EVENT_RAISED = "alert.raised"
SIGNATURE_HEADER = "X-Anjuka-Signature"
TIMESTAMP_HEADER = "X-Anjuka-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: How long a claimed delivery is reserved for the worker sending it.
LEASE = timedelta(seconds=60)
#: First retry after 30 s, doubling up to 6 hours; given up after 20 attempts (about 3 days).
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 6 * 3600
MAX_ATTEMPTS = 20
SEND_TIMEOUT_SECONDS = 10
_SECRET_CONTEXT = b"Anjuka webhook secret v1\x00"
_PENDING_FLAG = "anjuka_webhooks_pending"


def subscription_secret(subscription: WebhookSubscription) -> str:
    """The subscription's signing secret, derived from the webhook key."""
    digest = hmac.new(
        keyring().webhook_key,
        _SECRET_CONTEXT + bytes.fromhex(subscription.secret_salt),
        hashlib.sha256,
    ).hexdigest()
    return f"whsec_{digest}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` HMAC-SHA256 under the secret's UTF-8 bytes over ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def create_subscription(
    identity: Identity, area: Area, url: str, kinds: list[str] | None
) -> tuple[WebhookSubscription, str]:
    """Subscribe ``url`` to the alerts of ``area``'s subtree; returns the secret once."""
    subscription = WebhookSubscription(
        area=area,
        url=url,
        kinds=sorted(set(kinds)) if kinds else None,
        secret_salt=secrets.token_hex(16),
        created_by_id=identity.id if identity.kind == "user" else None,
    )
    db.session.add(subscription)
    db.session.flush()
    audit.record(
        "webhook.create",
        subject_type="webhook",
        subject_id=subscription.id,
        area_code=area.code,
        details={"url": url, "kinds": subscription.kinds},
    )
    return subscription, subscription_secret(subscription)


def deactivate_subscription(subscription: WebhookSubscription) -> None:
    """Stop sending to a subscription; its pending deliveries are abandoned."""
    if not subscription.active:
        raise Conflict("The subscription is already inactive.", code="webhook_inactive")
    subscription.active = False
    subscription.deactivated_at = utcnow()
    db.session.execute(
        sa.update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.ABANDONED, last_error="subscription deactivated")
    )
    db.session.flush()
    audit.record(
        "webhook.deactivate",
        subject_type="webhook",
        subject_id=subscription.id,
        area_code=subscription.area.code,
    )


def alert_payload(alert: Alert, key: str) -> dict:
    """What a receiver gets: the alert as raised, no personal data."""
    return {
        "event": EVENT_RAISED,
        "delivery": key,
        "alert": {
            "id": alert.id,
            "kind": alert.kind,
            "severity": alert.severity,
            "status": alert.status,
            "subject_type": alert.subject_type,
            "subject_id": alert.subject_id,
            "area_code": alert.area.code if alert.area is not None else None,
            "details": alert.details or {},
            "first_seen_at": alert.first_seen_at.isoformat(),
        },
    }


def enqueue_alert(alert: Alert, **_: object) -> int:
    """Write one delivery per matching subscription, in the alert's transaction."""
    if alert.area is None:
        return 0
    ancestors = alert.area.ancestor_codes
    subscriptions = db.session.scalars(
        sa.select(WebhookSubscription)
        .join(Area, WebhookSubscription.area_id == Area.id)
        .where(WebhookSubscription.active.is_(True), Area.code.in_(ancestors))
        .order_by(WebhookSubscription.id)
    ).all()
    queued = 0
    for subscription in subscriptions:
        if subscription.kinds and alert.kind not in subscription.kinds:
            continue
        key = f"alert-{alert.id}-webhook-{subscription.id}"
        db.session.add(
            WebhookDelivery(
                subscription_id=subscription.id,
                alert_id=alert.id,
                event=EVENT_RAISED,
                idempotency_key=key,
                payload=alert_payload(alert, key),
                next_attempt_at=alert.first_seen_at,
            )
        )
        queued += 1
    if queued:
        db.session.flush()
        db.session.info[_PENDING_FLAG] = True
    return queued


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones."""
    seconds = BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, BACKOFF_CAP_SECONDS))


@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str
    secret: str
    body: bytes
    key: str


@dataclass(frozen=True)
class DeliveryReport:
    """What one pass of the worker did."""

    delivered: int = 0
    failed: int = 0
    abandoned: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.abandoned


def _claim(now: datetime, limit: int) -> list[_Claimed]:
    rows = db.session.execute(
        sa.select(WebhookDelivery, WebhookSubscription)
        .join(WebhookSubscription, WebhookDelivery.subscription_id == WebhookSubscription.id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookSubscription.active.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    ).all()
    claimed = []
    for delivery, subscription in rows:
        delivery.next_attempt_at = now + LEASE
        delivery.attempts += 1
        body = json.dumps(
            delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        claimed.append(
            _Claimed(
                delivery.id,
                subscription.url,
                subscription_secret(subscription),
                body,
                delivery.idempotency_key,
            )
        )
    checkpoint()  # claimed before sending: nothing is held while the receiver answers
    return claimed


Sender = Callable[..., Any]


def _send(item: _Claimed, post: Sender, now: datetime) -> tuple[bool, int | None, str | None]:
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Anjuka-Webhooks/1",
        "X-Anjuka-Event": EVENT_RAISED,
        "X-Anjuka-Delivery": item.key,
        IDEMPOTENCY_HEADER: item.key,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(item.secret, timestamp, item.body),
    }
    try:
        response = post(
            item.url,
            data=item.body,
            headers=headers,
            timeout=SEND_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return True, response.status_code, None
    return False, response.status_code, f"HTTP {response.status_code}"


def _record(item: _Claimed, ok: bool, status: int | None, error: str | None, now: datetime) -> str:
    delivery = db.session.get_one(WebhookDelivery, item.id, populate_existing=True)
    subscription = delivery.subscription
    delivery.last_status_code = status
    if ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = None
        subscription.last_success_at = now
        subscription.consecutive_failures = 0
        outcome = "delivered"
    else:
        delivery.last_error = error
        subscription.last_failure_at = now
        subscription.last_error = error
        subscription.consecutive_failures += 1
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.ABANDONED
            outcome = "abandoned"
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts)
            outcome = "failed"
    checkpoint()  # each outcome on the record before the next is sent
    return outcome


def deliver_due(
    *, now: Callable[[], datetime] = utcnow, limit: int = 50, post: Sender = requests.post
) -> DeliveryReport:
    """Send every delivery that is due (one pass); each outcome is committed as it comes."""
    counts = {"delivered": 0, "failed": 0, "abandoned": 0}
    for item in _claim(now(), limit):
        ok, status, error = _send(item, post, now())
        counts[_record(item, ok, status, error, now())] += 1
        if not ok:
            log.warning("webhook delivery %s failed: %s", item.key, error)
    return DeliveryReport(**counts)


# -- the worker ---------------------------------------------------------------

_wake = threading.Event()


def _after_commit(session: Any) -> None:
    if session.info.pop(_PENDING_FLAG, False):
        _wake.set()


def _after_rollback(session: Any) -> None:
    session.info.pop(_PENDING_FLAG, None)


def run_worker(
    app: Flask, *, interval: float = 5.0, stop: threading.Event | None = None, once: bool = False
) -> None:
    """Deliver until ``stop`` is set: woken by each commit that queued something,
    else every ``interval`` seconds (retries fall due with time, not commits)."""
    stop = stop or threading.Event()
    while not stop.is_set():
        with app.app_context():
            try:
                report = deliver_due()
            except Exception:  # a database outage must not end the worker
                log.exception("webhook delivery pass failed")
                db.session.rollback()
                report = DeliveryReport()
            finally:
                db.session.remove()
        if once:
            return
        if report.attempted:
            continue  # more may be due right away
        _wake.wait(interval)
        _wake.clear()


def start_worker_thread(
    app: Flask, *, interval: float = 5.0
) -> tuple[threading.Thread, threading.Event]:
    """Run the worker in a daemon thread of this process; returns it and its stop event."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(app,),
        kwargs={"interval": interval, "stop": stop},
        name="anjuka-webhooks",
        daemon=True,
    )
    thread.start()
    return thread, stop


def stop_worker_thread(
    thread: threading.Thread, stop: threading.Event, timeout: float = 15
) -> None:
    """Ask the worker thread to finish its pass and wait for it."""
    stop.set()
    _wake.set()
    thread.join(timeout)


def start_in_server_worker(app: Flask) -> None:
    """Start the delivery thread in this server worker, if configured (``webhook_worker``).

    Called by the shipped gunicorn config after each worker has forked and
    loaded the app: a thread started in the preloading master would never
    be woken by the workers' commits (and threads do not survive a fork).
    """
    config = app.extensions["anjuka_config"]
    if config.webhook_worker == "thread" and "anjuka_webhook_worker" not in app.extensions:
        app.extensions["anjuka_webhook_worker"] = start_worker_thread(
            app, interval=config.webhook_interval
        )


def stop_in_server_worker(app: Flask) -> None:
    """Let this worker's delivery thread finish its pass (at the worker's exit)."""
    running = app.extensions.pop("anjuka_webhook_worker", None)
    if running is not None:
        stop_worker_thread(*running)


def connect(app: Flask) -> None:
    """Subscribe the outbox to new alerts (the worker runs elsewhere: see run_worker)."""
    from anjuka.core import signals

    signals.alert_raised.connect(enqueue_alert)
    if not sa.event.contains(sa.orm.Session, "after_commit", _after_commit):
        sa.event.listen(sa.orm.Session, "after_commit", _after_commit)
        sa.event.listen(sa.orm.Session, "after_rollback", _after_rollback)
