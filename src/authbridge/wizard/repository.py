"""Authorization codes: one-time codes, stored as hashes, that open the wizard and edit links."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from authbridge.storage.models import AuthorizationCode, new_id
from authbridge.storage.repositories._dml import affected_rows, hash_secret

CODE_BYTES = 32
DEFAULT_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class IssuedAuthorizationCode:
    """A new code and its plaintext, the only copy (hidden from repr)."""

    record: AuthorizationCode
    code: str = field(repr=False)


class AuthorizationCodeRepository:
    """Queries and changes of the ``authorization_codes`` table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        *,
        environment_id: str,
        end_user_id: str,
        origin: str | None,
        now: datetime,
        ttl: timedelta = DEFAULT_TTL,
    ) -> IssuedAuthorizationCode:
        code = secrets.token_urlsafe(CODE_BYTES)
        record = AuthorizationCode(
            id=new_id(),
            environment_id=environment_id,
            end_user_id=end_user_id,
            code_hash=hash_secret(code),
            origin=origin,
            progress={},
            created_at=now,
            expires_at=now + ttl,
        )
        self.session.add(record)
        self.session.flush()
        return IssuedAuthorizationCode(record=record, code=code)

    def get_valid(self, code: str, *, now: datetime) -> AuthorizationCode | None:
        """The unused, unexpired code, without using it up."""
        statement = select(AuthorizationCode).where(
            AuthorizationCode.code_hash == hash_secret(code),
            AuthorizationCode.used_at.is_(None),
            AuthorizationCode.expires_at > now,
        )
        return self.session.scalars(statement).first()

    def lock(self, record: AuthorizationCode) -> AuthorizationCode:
        """Read ``record`` again, locked until the transaction ends (``FOR UPDATE`` on
        PostgreSQL; SQLite writers are serialised), so two requests never both see it unbound."""
        statement = (
            select(AuthorizationCode).where(AuthorizationCode.id == record.id).with_for_update()
        )
        return self.session.scalars(statement, execution_options={"populate_existing": True}).one()

    def save_progress(self, record: AuthorizationCode, progress: dict[str, Any]) -> None:
        """Replace the wizard's progress (a new dict, so the JSON column sees the change)."""
        record.progress = dict(progress)
        self.session.flush()

    def consume(self, record: AuthorizationCode, *, now: datetime) -> bool:
        """Use the code up; ``False`` when it was used or expired meanwhile.

        One conditional UPDATE decides, so of two flows finishing at once exactly one wins.
        """
        statement = (
            update(AuthorizationCode)
            .where(
                AuthorizationCode.id == record.id,
                AuthorizationCode.used_at.is_(None),
                AuthorizationCode.expires_at > now,
            )
            .values(used_at=now)
        )
        return affected_rows(self.session, statement) == 1
