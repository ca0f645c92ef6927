"""Keyset (cursor) pagination on ``(created_at, id)``, oldest first.

A cursor is opaque to callers: base64url of the last row's ``created_at`` and ``id``. The next
page starts strictly after that key, so rows inserted or deleted between two requests never
make a page repeat or skip a row that existed throughout (new rows appear on a later page).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from authbridge.errors import InvalidInput

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of rows, and the cursor of the next page (``None`` on the last page)."""

    items: Sequence[ItemT]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """Return the opaque cursor that continues after the row keyed ``(created_at, row_id)``."""
    document = json.dumps([created_at.isoformat(), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Return the key a cursor continues after; :class:`InvalidInput` when it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at_text, row_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        created_at = datetime.fromisoformat(created_at_text)
        if created_at.tzinfo is None or not isinstance(row_id, str) or len(row_id) > 64:
            raise ValueError(cursor)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise InvalidInput(
            "the cursor is not valid; pass the next_cursor of a previous page", field="cursor"
        ) from None
    return created_at, row_id


def check_limit(limit: int) -> int:
    """Return ``limit`` when it is a page size we serve (1 to :data:`MAX_PAGE_SIZE`)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    return limit


def fetch_page(
    session: Session,
    statement: Select[ItemT],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> Page[ItemT]:
    """Run ``statement`` (a filtered ``select`` of one model) for the page after ``cursor``.

    ``created_at`` and ``row_id`` are that model's columns; the statement must not be ordered.
    """
    check_limit(limit)
    if cursor is not None:
        after_created_at, after_id = decode_cursor(cursor)
        statement = statement.where(
            or_(
                created_at > after_created_at,
                and_(created_at == after_created_at, row_id > after_id),
            )
        )
    keyed = statement.add_columns(created_at, row_id).order_by(created_at, row_id)
    rows: list[Any] = list(session.execute(keyed.limit(limit + 1)))
    items: list[ItemT] = [row[0] for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        _, last_created_at, last_id = rows[limit - 1]
        next_cursor = encode_cursor(last_created_at, last_id)
    return Page(items=items, next_cursor=next_cursor)
