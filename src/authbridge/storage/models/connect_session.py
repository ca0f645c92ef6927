"""The ``connect_sessions`` table: one-time codes that open the connect pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authbridge.storage.models.authentication import Authentication
from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow
from authbridge.storage.models.end_user import EndUser


class ConnectSession(Base):
    """A connect page opened for one end user and connector, optionally editing one auth.

    Only the SHA-256 of the code is stored. ``options`` holds the host's choices for the page
    (``skip_title_field``, ``skip_auth_settings``); ``origin`` is where the result is posted.
    """

    __tablename__ = "connect_sessions"

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    end_user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("end_users.id", ondelete="CASCADE"), index=True
    )
    connector_key: Mapped[str] = mapped_column(String(128))
    connector_version: Mapped[str] = mapped_column(String(32))
    authentication_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("authentications.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str | None] = mapped_column(String(512))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]

    end_user: Mapped[EndUser] = relationship(lazy="raise")
    authentication: Mapped[Authentication | None] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return (
            f"ConnectSession(id={self.id!r}, connector_key={self.connector_key!r}, "
            f"expires_at={self.expires_at!r}, used_at={self.used_at!r})"
        )
