"""Changing stored rows as background work would, for tests that need a state first."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from authbridge.storage.models import Authentication, AuthStatus


def set_status(
    session: Session, auth: Authentication, status: AuthStatus, *, last_error: str | None = None
) -> None:
    """Give ``auth`` ``status`` and ``last_error`` (bumping its version), as the worker or a
    refresh does when a provider refuses the credentials or they expire."""
    session.execute(
        update(Authentication)
        .where(Authentication.id == auth.id)
        .values(status=status, last_error=last_error, version=Authentication.version + 1)
    )
    if auth in session:
        session.expire(auth)
