"""The ``authentications`` table: connected accounts and their encrypted credentials."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Enum, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow
from authbridge.storage.models.end_user import EndUser


class AuthStatus(StrEnum):
    """Whether an authentication can be used: only ``active`` ones are refreshed and served."""

    ACTIVE = "active"
    EXPIRED = "expired"
    INVALID = "invalid"
    REVOKED = "revoked"


class Authentication(Base):
    """One connected account of an end user (or a shared one, without an end user).

    ``credentials_ct`` and ``profile_ct`` are encrypted JSON bound to this row. ``version`` grows
    by one on every change, so a writer can tell whether the row changed since it read it.
    ``lease_owner`` / ``lease_until`` mark the one refresh in progress, across every process;
    ``lease_taken_from`` is the holder of a lease that ran out and was taken over (its refresh
    was interrupted); ``refresh_failures`` counts transient failures in a row (for backoff);
    ``expiry_warned_for`` is the ``hard_expires_at`` an ``authentication.expiring`` was sent for.
    """

    __tablename__ = "authentications"
    __table_args__ = (
        Index("ix_authentications_owner", "environment_id", "end_user_id", "connector_key"),
        Index("ix_authentications_listing", "environment_id", "created_at", "id"),
        Index("ix_authentications_refresh_due_at", "refresh_due_at"),
        Index("ix_authentications_delete_at", "delete_at"),
    )

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    end_user_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("end_users.id", ondelete="CASCADE")
    )
    connector_key: Mapped[str] = mapped_column(String(128))
    connector_version: Mapped[str] = mapped_column(String(32))
    connector_variant: Mapped[str | None] = mapped_column(String(64))
    """The connector's variant (e.g. ``sandbox``); ``None`` is the connector's default."""
    auth_type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    credentials_ct: Mapped[bytes] = mapped_column(LargeBinary)
    profile_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    email: Mapped[str | None] = mapped_column(String(320))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[AuthStatus] = mapped_column(
        Enum(
            AuthStatus,
            name="status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda statuses: [status.value for status in statuses],
            validate_strings=True,
        ),
        default=AuthStatus.ACTIVE,
    )
    expires_at: Mapped[datetime | None]
    refresh_due_at: Mapped[datetime | None]
    hard_expires_at: Mapped[datetime | None]
    delete_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    lease_until: Mapped[datetime | None]
    lease_taken_from: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    refresh_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    expiry_warned_for: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    end_user: Mapped[EndUser | None] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return (
            f"Authentication(id={self.id!r}, connector_key={self.connector_key!r}, "
            f"status={self.status.value!r}, version={self.version!r})"
        )
