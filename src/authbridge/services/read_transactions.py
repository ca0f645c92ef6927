"""Transactions that only read, unless they turn out to need a write.

A read-only transaction runs beside any writer, which on SQLite a write transaction does not:
it takes the database's one write lock and the process's writer turn, so readers in write
transactions queue behind each other and behind every writer. Work that writes only now and
then (a master token's last use, once a minute; an end user seen for the first time) runs with
:func:`read_first`: read-only, and again in a write transaction should it try to write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from authbridge.services.bridge import Bridge

T = TypeVar("T")


class WriteNeeded(Exception):
    """The work of a read-only transaction tried to write."""


def _refuse_statement(state: ORMExecuteState) -> None:
    if not state.is_select:
        raise WriteNeeded


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    raise WriteNeeded


def read_only(bridge: Bridge, work: Callable[[Session], T]) -> T:
    """Run ``work`` in a read-only transaction; :class:`WriteNeeded` if it tries to write.

    Nothing written is ever lost: the statement is refused before it runs, and the caller
    runs ``work`` again in a write transaction (:func:`read_first`).
    """
    with bridge.session(readonly=True) as session:
        event.listen(session, "do_orm_execute", _refuse_statement)
        event.listen(session, "before_flush", _refuse_flush)
        return work(session)


def read_first(bridge: Bridge, work: Callable[[Session], T]) -> T:
    """Run ``work`` with :func:`read_only`; should it write, again in a write transaction."""
    try:
        return read_only(bridge, work)
    except WriteNeeded:
        pass
    with bridge.session() as session:
        return work(session)
