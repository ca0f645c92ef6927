"""What the resolvers of one GraphQL request share: the bridge, the caller and one transaction.

An operation runs synchronously in one worker thread (see :class:`~.schema.ThreadedSchema`),
so the resolvers call the sync services directly, like the REST endpoints do. The request's
transaction is opened at first use (introspection needs none, and a missing token is reported
by the first field that needs the caller); each mutation works inside a savepoint of it, so a
failed mutation leaves nothing behind while those before it are kept. The transaction commits
when the operation ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy.orm import Session
from strawberry.fastapi import BaseContext

from authbridge import errors
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal, authenticate
from authbridge.solutions import rules as solution_rules
from authbridge.storage.models import Solution


class GraphQLContext(BaseContext):
    """The request's bridge, bearer token (``None`` when none was sent) and transaction."""

    def __init__(self, bridge: Bridge, token: str | None) -> None:
        super().__init__()
        self.bridge = bridge
        self._token = token
        self._principal: Principal | None = None
        self._session: Session | None = None
        self._transaction: ExitStack | None = None
        self._solutions: dict[str, Solution | None] = {}

    def __repr__(self) -> str:
        return f"GraphQLContext(principal={self._principal!r})"  # never the token

    def use(self) -> tuple[Session, Principal]:
        """The request's transaction (opened now if none is open) and the authenticated caller."""
        if self._token is None:
            raise errors.Unauthenticated(
                "send a token in the header 'Authorization: Bearer <token>'"
            )
        if self._session is None:
            transaction = ExitStack()
            session = transaction.enter_context(self.bridge.session())
            with transaction.pop_all() as on_error:
                if self._principal is None:
                    self._principal = authenticate(
                        session,
                        self.bridge.keyring,
                        self._token,
                        now=self.bridge.now(),
                        leeway=self.bridge.token_leeway,
                    )
                transaction = on_error.pop_all()
            self._session, self._transaction = session, transaction
        assert self._principal is not None
        return self._session, self._principal

    @contextmanager
    def change(self) -> Iterator[tuple[Session, Principal]]:
        """A mutation's work: in a savepoint that is rolled back alone if the mutation fails."""
        session, principal = self.use()
        with session.begin_nested():
            yield session, principal

    def end_transaction(self, error: BaseException | None = None) -> None:
        """Commit the open transaction (roll it back after ``error``); the next use opens one.

        A mutation that calls a provider ends the transaction first: no transaction spans a
        provider call.
        """
        transaction, self._transaction, self._session = self._transaction, None, None
        self._solutions.clear()
        if transaction is None:
            return
        if error is None:
            transaction.close()
        else:
            transaction.__exit__(type(error), error, error.__traceback__)

    def solution(self, solution_id: str) -> Solution | None:
        """A solution of the caller's environment, loaded once per request (instances of one
        solution share it, so a list of instances costs one query per distinct solution)."""
        if solution_id not in self._solutions:
            session, principal = self.use()
            found = solution_rules.find_solution(session, principal.environment_id, solution_id)
            self._solutions[solution_id] = found
        return self._solutions[solution_id]
