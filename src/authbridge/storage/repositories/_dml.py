"""Running an UPDATE or DELETE and counting the rows it matched."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session


def affected_rows(session: Session, statement: Executable) -> int:
    """Execute the UPDATE or DELETE ``statement`` and return how many rows it matched."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount
