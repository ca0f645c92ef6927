"""Helpers shared by the repositories: counting matched rows, hashing compared secrets."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session


def affected_rows(session: Session, statement: Executable) -> int:
    """Execute the UPDATE or DELETE ``statement`` and return how many rows it matched."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount


def hash_secret(value: str) -> str:
    """The stored form of a high-entropy secret we only compare (a token, a one-time code):
    the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
