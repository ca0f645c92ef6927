"""The ``authorization_codes`` table: one-time codes that open the wizard and edit links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class AuthorizationCode(Base):
    """A code minted for one end user: it opens the configuration wizard or an edit link.

    Only the SHA-256 of the code is stored. ``origin`` is the host page the finished flow
    reports to. ``progress`` keeps the wizard's state between its screens on the server
    (the ``dialog`` the code opened, the page, its theme, the account chosen for each auth
    slot, a ``pending`` connect), so nothing the browser sends decides a slot, a connector or a
    scope. One dialog per code, single use: ``used_at`` is set by the flow that finishes.
    """

    __tablename__ = "authorization_codes"

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    end_user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("end_users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    origin: Mapped[str | None] = mapped_column(String(512))
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return (
            f"AuthorizationCode(id={self.id!r}, expires_at={self.expires_at!r}, "
            f"used_at={self.used_at!r})"
        )
