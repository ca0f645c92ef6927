"""The ``audit_events`` table: who created, read, changed or deleted what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class AuditEvent(Base):
    """One audited action.

    ``actor`` names who did it (``master:<token id>``, ``user:<end user id>``, ``cli``),
    ``action`` what (``authentication.credentials_read`` …). ``detail`` never holds a secret.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_listing", "environment_id", "created_at", "id"),
        Index("ix_audit_events_target", "environment_id", "target_type", "target_id"),
    )

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def __repr__(self) -> str:
        return (
            f"AuditEvent(id={self.id!r}, actor={self.actor!r}, action={self.action!r}, "
            f"target_id={self.target_id!r})"
        )
