"""Master tokens: shown once when created, then known only by their SHA-256."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from authbridge.storage.models import MasterToken, new_id, utcnow
from authbridge.storage.repositories._dml import affected_rows, hash_secret

TOKEN_PREFIX = "abk_"
TOKEN_BYTES = 32
SHOWN_PREFIX_LENGTH = 8
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedMasterToken:
    """A newly created master token; ``token`` is its only plaintext copy (hidden from repr)."""

    record: MasterToken
    token: str = field(repr=False)


class MasterTokenRepository:
    """Queries and changes of the ``master_tokens`` table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, environment_id: str, name: str) -> IssuedMasterToken:
        """Create a token ``abk_<43 base64url characters>``; only its hash is stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        record = MasterToken(
            id=new_id(),
            environment_id=environment_id,
            name=name,
            token_hash=hash_secret(token),
            prefix=token[:SHOWN_PREFIX_LENGTH],
            created_at=utcnow(),
        )
        self.session.add(record)
        self.session.flush()
        return IssuedMasterToken(record=record, token=token)

    def verify(self, token: str) -> MasterToken | None:
        """Return the unrevoked master token whose value is ``token``, else ``None``."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = hash_secret(token)
        statement = select(MasterToken).where(
            MasterToken.token_hash == digest, MasterToken.revoked_at.is_(None)
        )
        record = self.session.scalars(statement).first()
        # The lookup is by an index; comparing again in constant time keeps the final decision
        # free of early-exit timing whatever the database's string comparison does.
        if record is None or not hmac.compare_digest(record.token_hash, digest):
            return None
        return record

    def record_use(self, record: MasterToken, now: datetime | None = None) -> None:
        """Set ``last_used_at``, writing at most once a minute per token."""
        now = now or utcnow()
        statement = (
            update(MasterToken)
            .where(
                MasterToken.id == record.id,
                or_(
                    MasterToken.last_used_at.is_(None),
                    MasterToken.last_used_at < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        if affected_rows(self.session, statement):
            set_committed_value(record, "last_used_at", now)

    def get(self, environment_id: str, token_id: str) -> MasterToken | None:
        statement = select(MasterToken).where(
            MasterToken.environment_id == environment_id, MasterToken.id == token_id
        )
        return self.session.scalars(statement).first()

    def list(self, environment_id: str, *, include_revoked: bool = False) -> Sequence[MasterToken]:
        """Return the environment's tokens, oldest first."""
        statement = select(MasterToken).where(MasterToken.environment_id == environment_id)
        if not include_revoked:
            statement = statement.where(MasterToken.revoked_at.is_(None))
        statement = statement.order_by(MasterToken.created_at, MasterToken.id)
        return list(self.session.scalars(statement))

    def revoke(self, environment_id: str, token_id: str, now: datetime | None = None) -> bool:
        """Revoke a token; return whether an unrevoked token with that id was found."""
        statement = (
            update(MasterToken)
            .where(
                MasterToken.environment_id == environment_id,
                MasterToken.id == token_id,
                MasterToken.revoked_at.is_(None),
            )
            .values(revoked_at=now or utcnow())
        )
        return affected_rows(self.session, statement) == 1
