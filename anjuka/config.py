"""Configuration: one frozen dataclass, built once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


def _default_instance_path() -> Path:
    return Path(os.environ.get("ANJUKA_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def _with_driver(url: str) -> str:
    """A PostgreSQL URL names psycopg (version 3) as its driver."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@dataclass(frozen=True)
class Config:
    """Everything the application reads from its environment."""

    instance_path: Path = field(default_factory=_default_instance_path)
    database_url: str | None = None
    secret_key: str | None = None
    token_lifetime: timedelta = timedelta(hours=12)
    session_lifetime: timedelta = timedelta(hours=8)
    #: A browser session unused this long is signed out (its lifetime is the absolute limit).
    session_idle: timedelta = timedelta(minutes=30)
    max_content_length: int = 1024 * 1024
    #: Failed sign-ins allowed per account and client address (then 429 until one lapses).
    sign_in_limit: str = "5 per 15 minutes"
    #: Failed sign-ins allowed per client address across every account.
    sign_in_address_limit: str = "30 per 15 minutes"
    #: Look-ups by document number allowed per user (the look-up endpoint and
    #: document verifications together); a burst beyond raises ``bulk_lookup``.
    lookup_limit: str = "30 per minute"
    #: Where the throttles count: ``memory://`` (per process) or a shared store
    #: such as ``redis://host:6379`` for several workers or hosts.
    ratelimit_storage_url: str = "memory://"
    #: How many proxies in front of the app to believe about the client address
    #: (``X-Forwarded-For``, ``X-Forwarded-Proto``); 0 trusts none.
    trusted_proxies: int = 0
    # JSON file with the key material; created in the instance folder if absent.
    keys_file: Path | None = None
    testing: bool = False
    sql_echo: bool = False
    #: The registry's calendar: arrival, departure and deadline days are counted here.
    timezone: str = "Asia/Shanghai"
    #: Connections per process on PostgreSQL (size it to gunicorn's threads).
    db_pool_size: int | None = None
    #: "thread": each gunicorn worker (shipped config) also delivers webhooks.
    webhook_worker: str | None = None
    #: Seconds between webhook passes when no commit wakes the worker.
    webhook_interval: float = 5.0
    #: How long an ``Idempotency-Key`` and its answer are kept.
    idempotency_lifetime: timedelta = timedelta(hours=24)
    #: Addresses and networks that may read ``/metrics`` (others get 404).
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    #: A PostgreSQL streaming replica for reads that may lag (docs/deployment.md).
    replica_url: str | None = None
    #: Seconds the replica may lag before its reads go to the primary.
    replica_max_lag: float = 10.0

    @classmethod
    def from_env(cls, **overrides: object) -> Config:
        """Read ``ANJUKA_*`` variables; keyword arguments win."""
        env = os.environ
        values: dict[str, object] = {}
        if env.get("ANJUKA_DATABASE_URL"):
            values["database_url"] = env["ANJUKA_DATABASE_URL"]
        if env.get("ANJUKA_SECRET_KEY"):
            values["secret_key"] = env["ANJUKA_SECRET_KEY"]
        if env.get("ANJUKA_KEYS_FILE"):
            values["keys_file"] = Path(env["ANJUKA_KEYS_FILE"])
        if env.get("ANJUKA_TOKEN_HOURS"):
            values["token_lifetime"] = timedelta(hours=float(env["ANJUKA_TOKEN_HOURS"]))
        if env.get("ANJUKA_TIMEZONE"):
            values["timezone"] = env["ANJUKA_TIMEZONE"]
        if env.get("ANJUKA_DB_POOL_SIZE"):
            values["db_pool_size"] = int(env["ANJUKA_DB_POOL_SIZE"])
        if env.get("ANJUKA_WEBHOOK_WORKER"):
            values["webhook_worker"] = env["ANJUKA_WEBHOOK_WORKER"]
        if env.get("ANJUKA_WEBHOOK_INTERVAL"):
            values["webhook_interval"] = float(env["ANJUKA_WEBHOOK_INTERVAL"])
        if env.get("ANJUKA_IDEMPOTENCY_HOURS"):
            values["idempotency_lifetime"] = timedelta(hours=float(env["ANJUKA_IDEMPOTENCY_HOURS"]))
        if env.get("ANJUKA_METRICS_ALLOW"):
            values["metrics_allow"] = tuple(env["ANJUKA_METRICS_ALLOW"].replace(",", " ").split())
        if env.get("ANJUKA_REPLICA_URL"):
            values["replica_url"] = env["ANJUKA_REPLICA_URL"]
        if env.get("ANJUKA_REPLICA_MAX_LAG"):
            values["replica_max_lag"] = float(env["ANJUKA_REPLICA_MAX_LAG"])
        for name in ("sign_in_limit", "sign_in_address_limit", "lookup_limit"):
            if env.get(f"ANJUKA_{name.upper()}"):
                values[name] = env[f"ANJUKA_{name.upper()}"]
        if env.get("ANJUKA_RATELIMIT_STORAGE_URL"):
            values["ratelimit_storage_url"] = env["ANJUKA_RATELIMIT_STORAGE_URL"]
        if env.get("ANJUKA_TRUSTED_PROXIES"):
            values["trusted_proxies"] = int(env["ANJUKA_TRUSTED_PROXIES"])
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the instance folder."""
        if self.database_url:
            return _with_driver(self.database_url)
        return f"sqlite:///{self.instance_path / 'anjuka.sqlite3'}"

    @property
    def resolved_replica_url(self) -> str | None:
        """The replica's URL with the driver named, or None without a replica."""
        return _with_driver(self.replica_url) if self.replica_url else None

    @property
    def resolved_keys_file(self) -> Path:
        """Where the key material lives."""
        return self.keys_file or self.instance_path / "keys.json"

    def flask_settings(self) -> dict[str, object]:
        """The settings Flask and its extensions read from ``app.config``."""
        engine_options: dict[str, object] = {"pool_pre_ping": True}
        if self.db_pool_size and not self.resolved_database_url.startswith("sqlite"):
            engine_options.update(pool_size=self.db_pool_size, max_overflow=self.db_pool_size)
        return {
            "SQLALCHEMY_DATABASE_URI": self.resolved_database_url,
            "SQLALCHEMY_ECHO": self.sql_echo,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "MAX_CONTENT_LENGTH": self.max_content_length,
            "TESTING": self.testing,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Strict",
            "SESSION_COOKIE_SECURE": not self.testing,
            "PERMANENT_SESSION_LIFETIME": self.session_lifetime,
            "API_TITLE": "Anjuka",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/api/v1",
            "OPENAPI_JSON_PATH": "openapi.json",
            "JSON_SORT_KEYS": False,
            "RATELIMIT_STORAGE_URI": self.ratelimit_storage_url,
            # Exact windows: a fixed window would let twice the figure through at its edge.
            "RATELIMIT_STRATEGY": "moving-window",
            "RATELIMIT_KEY_PREFIX": "anjuka",
        }
