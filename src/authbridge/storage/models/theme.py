"""The ``themes`` table: the branding of the configuration wizard and edit pages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class Theme(Base):
    """A theme, chosen by its ``key`` in page URLs (``/external/auth/edit/{key}/...``).

    ``css`` is the host's stylesheet, served as a stylesheet of its own (never inlined), so the
    pages keep their strict Content-Security-Policy; ``logo_url`` must be https.
    """

    __tablename__ = "themes"
    __table_args__ = (UniqueConstraint("environment_id", "key"),)

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    logo_url: Mapped[str | None] = mapped_column(String(2048))
    css: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Theme(key={self.key!r})"
