"""What ``/metrics`` serves: each process's request figures and the database's state at scrape time.

The request counters and latencies come from every gunicorn worker
(``prometheus_client``'s multiprocess mode, ``anjuka.core.metrics``); the
gauges below are read from the database on each scrape, so every worker
and every host answers the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from anjuka.alerts.models import ALERT_KINDS, Alert, SweepCursor
from anjuka.cards.models import OPEN_STATUSES, CardJob
from anjuka.core.db import db
from anjuka.core.time import utcnow
from anjuka.notifications.models import WebhookDelivery


class _ThisProcess(Collector):
    """The figures this process keeps (when no multiprocess directory is set)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class RegistryState(Collector):
    """Card jobs, alerts, webhook backlog and the sweep, as the database has them now."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("anjuka_database_up", "Whether the database answered this scrape.")
        try:
            families = list(self._from_database())
        except sa.exc.SQLAlchemyError:
            db.session.rollback()
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _from_database(self) -> Iterator[Metric]:
        now = utcnow()
        jobs = GaugeMetricFamily(
            "anjuka_card_jobs", "Card jobs not yet finished, by status.", labels=["status"]
        )
        counted = dict(
            db.session.execute(
                sa.select(CardJob.status, sa.func.count())
                .where(CardJob.status.in_(OPEN_STATUSES))
                .group_by(CardJob.status)
            ).all()
        )
        for status in OPEN_STATUSES:
            jobs.add_metric([status], counted.get(status, 0))
        yield jobs

        alerts = GaugeMetricFamily("anjuka_alerts_open", "Open alerts, by kind.", labels=["kind"])
        counted = dict(
            db.session.execute(
                sa.select(Alert.kind, sa.func.count())
                .where(Alert.status == "open")
                .group_by(Alert.kind)
            ).all()
        )
        for kind in sorted(set(ALERT_KINDS) | set(counted)):
            alerts.add_metric([kind], counted.get(kind, 0))
        yield alerts

        pending, oldest = db.session.execute(
            sa.select(sa.func.count(), sa.func.min(WebhookDelivery.created_at)).where(
                WebhookDelivery.status == "pending"
            )
        ).one()
        yield GaugeMetricFamily(
            "anjuka_webhook_deliveries_pending",
            "Webhook deliveries waiting to be sent (the backlog).",
            value=pending,
        )
        yield GaugeMetricFamily(
            "anjuka_webhook_oldest_pending_age_seconds",
            "Age of the oldest webhook delivery still waiting (0 when none waits).",
            value=0 if oldest is None else (now - _aware(oldest)).total_seconds(),
        )

        last_run = db.session.scalar(sa.select(sa.func.max(SweepCursor.last_run_at)))
        if last_run is not None:
            last_run = _aware(last_run)
            yield GaugeMetricFamily(
                "anjuka_sweep_last_run_timestamp_seconds",
                "When the sweep last ran (Unix time); absent before its first run.",
                value=last_run.timestamp(),
            )
            yield GaugeMetricFamily(
                "anjuka_sweep_age_seconds",
                "Seconds since the sweep last ran; absent before its first run.",
                value=(now - last_run).total_seconds(),
            )


def _aware(moment: datetime | str) -> datetime:
    """A datetime read through an aggregate (SQLite returns it without a zone, or as text)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def scrape_registry() -> CollectorRegistry:
    """Everything one scrape reports: every worker's request figures and the database's state."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(RegistryState())
    return registry
