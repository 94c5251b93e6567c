"""Users, their scopes, and API tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.areas.models import Area
from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime
from anjuka.core.time import utcnow

ROLES = ("admin", "supervisor", "manager", "officer", "auditor")


class User(Model):
    """A person who signs in: admin, supervisor, manager, officer or auditor."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(
            "role IN ('admin', 'supervisor', 'manager', 'officer', 'auditor')", name="role_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    display_name: Mapped[str | None] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    #: A disabled account cannot sign in, and its tokens and sessions answer 401.
    active: Mapped[bool] = mapped_column(default=True)
    #: The language the user chose for the pages (None: the browser's, else Chinese).
    locale: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    scopes: Mapped[list[UserScope]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class UserScope(Model):
    """One thing a user's role applies to: an area subtree, an estate or a dwelling."""

    __tablename__ = "user_scopes"
    __table_args__ = (
        sa.CheckConstraint(
            "(CASE WHEN area_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN estate_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN dwelling_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="exactly_one_target",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    area_id: Mapped[int | None] = mapped_column(sa.ForeignKey("areas.id"))
    estate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("estates.id"))
    dwelling_id: Mapped[int | None] = mapped_column(sa.ForeignKey("dwellings.id"))

    user: Mapped[User] = relationship(back_populates="scopes")
    area: Mapped[Area | None] = relationship()


TOKEN_KINDS = ("token", "session")


class ApiToken(Model):
    """A bearer token or a browser session's token: only its SHA-256 is stored.

    It expires and can be revoked.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (sa.CheckConstraint("kind IN ('token', 'session')", name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    #: ``token`` (``POST /auth/tokens``) or ``session`` (``POST /auth/session``).
    kind: Mapped[str] = mapped_column(sa.String(16), default="token", server_default="token")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    origin: Mapped[str | None] = mapped_column(sa.String(64))

    user: Mapped[User] = relationship()
