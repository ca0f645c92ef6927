"""Themes: the branding of the wizard and edit pages, one environment at a time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from authbridge.storage.models import Theme, new_id


class ThemeRepository:
    """Queries and changes of the ``themes`` table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, environment_id: str, key: str) -> Theme | None:
        statement = select(Theme).where(Theme.environment_id == environment_id, Theme.key == key)
        return self.session.scalars(statement).first()

    def get_by_id(self, theme_id: str) -> Theme | None:
        """The theme with this row id, in any environment (ids are random UUIDs)."""
        return self.session.get(Theme, theme_id)

    def list(self, environment_id: str) -> Sequence[Theme]:
        statement = select(Theme).where(Theme.environment_id == environment_id).order_by(Theme.key)
        return list(self.session.scalars(statement))

    def upsert(
        self,
        environment_id: str,
        key: str,
        *,
        title: str,
        logo_url: str | None,
        css: str,
        now: datetime,
    ) -> tuple[Theme, bool]:
        """Set the whole theme; return it and whether it was created."""
        theme = self.get(environment_id, key)
        created = theme is None
        if theme is None:
            theme = Theme(id=new_id(), environment_id=environment_id, key=key, created_at=now)
            self.session.add(theme)
        theme.title = title
        theme.logo_url = logo_url
        theme.css = css
        theme.updated_at = now
        self.session.flush()
        return theme, created

    def delete(self, theme: Theme) -> None:
        self.session.delete(theme)
        self.session.flush()
