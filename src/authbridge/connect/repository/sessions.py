"""Connect sessions: one-time codes, stored as hashes, that open the connect pages."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from authbridge.storage.models import ConnectSession, new_id, utcnow
from authbridge.storage.repositories._dml import affected_rows, hash_secret

CODE_BYTES = 32
DEFAULT_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class IssuedConnectSession:
    """A new connect session and its one-time code, the only plaintext copy (hidden from repr)."""

    record: ConnectSession
    code: str = field(repr=False)


class ConnectSessionRepository:
    """Queries and changes of the ``connect_sessions`` table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        *,
        environment_id: str,
        end_user_id: str,
        connector_key: str,
        connector_version: str,
        authentication_id: str | None = None,
        origin: str | None = None,
        options: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        ttl: timedelta = DEFAULT_TTL,
    ) -> IssuedConnectSession:
        """Open a session valid for ``ttl``; ``authentication_id`` edits that auth in place."""
        now = now or utcnow()
        code = secrets.token_urlsafe(CODE_BYTES)
        record = ConnectSession(
            id=new_id(),
            environment_id=environment_id,
            code_hash=hash_secret(code),
            end_user_id=end_user_id,
            connector_key=connector_key,
            connector_version=connector_version,
            authentication_id=authentication_id,
            origin=origin,
            options=dict(options or {}),
            created_at=now,
            expires_at=now + ttl,
        )
        self.session.add(record)
        self.session.flush()
        return IssuedConnectSession(record=record, code=code)

    def get_valid(self, code: str, *, now: datetime) -> ConnectSession | None:
        """Return the unused, unexpired session of ``code`` without using it up."""
        statement = select(ConnectSession).where(
            ConnectSession.code_hash == hash_secret(code),
            ConnectSession.used_at.is_(None),
            ConnectSession.expires_at > now,
        )
        return self.session.scalars(statement).first()

    def consume(self, code: str, *, now: datetime) -> ConnectSession | None:
        """Use up the session of ``code``; ``None`` when unknown, expired or already used.

        A single conditional UPDATE decides, so of two concurrent callers exactly one wins.
        """
        statement = (
            update(ConnectSession)
            .where(
                ConnectSession.code_hash == hash_secret(code),
                ConnectSession.used_at.is_(None),
                ConnectSession.expires_at > now,
            )
            .values(used_at=now)
            .returning(ConnectSession)
        )
        return self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()

    def consume_by_id(self, session_id: str, *, now: datetime) -> ConnectSession | None:
        """Use up session ``session_id`` (reached through an OAuth state, not its code)."""
        statement = (
            update(ConnectSession)
            .where(
                ConnectSession.id == session_id,
                ConnectSession.used_at.is_(None),
                ConnectSession.expires_at > now,
            )
            .values(used_at=now)
            .returning(ConnectSession)
        )
        return self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()

    def reopen(self, session_id: str) -> None:
        """Make a used session usable again until it expires (its account was taken back)."""
        self.session.execute(
            update(ConnectSession)
            .where(ConnectSession.id == session_id, ConnectSession.used_at.is_not(None))
            .values(used_at=None)
        )

    def get(self, environment_id: str, session_id: str) -> ConnectSession | None:
        statement = select(ConnectSession).where(
            ConnectSession.environment_id == environment_id, ConnectSession.id == session_id
        )
        return self.session.scalars(statement).first()

    def delete_expired(self, before: datetime) -> int:
        """Delete sessions that expired before ``before``; return how many."""
        statement = delete(ConnectSession).where(ConnectSession.expires_at < before)
        return affected_rows(self.session, statement)
