"""End users, found by the host's own user id."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authbridge.errors import Conflict
from authbridge.storage.models import EndUser, new_id, utcnow
from authbridge.storage.pagination import DEFAULT_PAGE_SIZE, Page, fetch_page


class EndUserRepository:
    """Queries and changes of the ``end_users`` table, always within one environment."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, environment_id: str, end_user_id: str) -> EndUser | None:
        statement = select(EndUser).where(
            EndUser.environment_id == environment_id, EndUser.id == end_user_id
        )
        return self.session.scalars(statement).first()

    def get_by_external_id(self, environment_id: str, external_user_id: str) -> EndUser | None:
        statement = select(EndUser).where(
            EndUser.environment_id == environment_id,
            EndUser.external_user_id == external_user_id,
        )
        return self.session.scalars(statement).first()

    def create(
        self,
        environment_id: str,
        external_user_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
    ) -> EndUser:
        """Add an end user; :class:`errors.Conflict` when ``external_user_id`` is not new in the
        environment (also when a concurrent transaction has just added it)."""
        now = utcnow()
        end_user = EndUser(
            id=new_id(),
            environment_id=environment_id,
            external_user_id=external_user_id,
            name=name,
            email=email,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.session.begin_nested():  # a duplicate undoes this insert only
                self.session.add(end_user)
        except IntegrityError:
            raise Conflict(
                f"an end user with external id '{external_user_id}' already exists"
            ) from None
        return end_user

    def get_or_create(
        self,
        environment_id: str,
        external_user_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
    ) -> EndUser:
        """Return the end user with ``external_user_id``, creating it on first sight.

        ``name`` and ``email`` are used only when the end user is created. Concurrent first
        sightings agree on one row.
        """
        existing = self.get_by_external_id(environment_id, external_user_id)
        if existing is not None:
            return existing
        try:
            return self.create(environment_id, external_user_id, name=name, email=email)
        except Conflict:
            created = self.get_by_external_id(environment_id, external_user_id)
            if created is None:
                raise
            return created

    def update(self, end_user: EndUser, *, name: str | None, email: str | None) -> EndUser:
        """Set the end user's name and email."""
        end_user.name = name
        end_user.email = email
        end_user.updated_at = utcnow()
        self.session.flush()
        return end_user

    def list(
        self, environment_id: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[EndUser]:
        """Return one page of the environment's end users, oldest first."""
        statement = select(EndUser).where(EndUser.environment_id == environment_id)
        return fetch_page(
            self.session, statement, EndUser.created_at, EndUser.id, limit=limit, cursor=cursor
        )

    def external_ids(self, end_user_ids: Iterable[str | None]) -> dict[str, str]:
        """Map end user ids to their external ids, in one query."""
        wanted = {end_user_id for end_user_id in end_user_ids if end_user_id is not None}
        if not wanted:
            return {}
        statement = select(EndUser.id, EndUser.external_user_id).where(EndUser.id.in_(wanted))
        return {row.id: row.external_user_id for row in self.session.execute(statement)}
