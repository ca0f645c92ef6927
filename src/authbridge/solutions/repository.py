"""Solutions, their slots and instances, and the authentications instances use."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from authbridge.authentications.repository import served_at
from authbridge.storage.models import (
    Authentication,
    AuthSlot,
    AuthStatus,
    Solution,
    SolutionInstance,
    SolutionInstanceAuth,
)
from authbridge.storage.pagination import DEFAULT_PAGE_SIZE, Page, fetch_page


@dataclass(frozen=True)
class AuthUse:
    """An authentication filling slot ``external_id`` of instance ``instance_id``."""

    instance_id: str
    external_id: str
    force_unique: bool


class SolutionRepository:
    """Queries and changes of the solution tables, always within one environment."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- solutions ------------------------------------------------------------------------------

    def get(self, environment_id: str, solution_id: str) -> Solution | None:
        statement = select(Solution).where(
            Solution.environment_id == environment_id, Solution.id == solution_id
        )
        return self.session.scalars(statement).first()

    def get_by_key(self, environment_id: str, key: str) -> Solution | None:
        statement = select(Solution).where(
            Solution.environment_id == environment_id, Solution.key == key
        )
        return self.session.scalars(statement).first()

    def list_solutions(self, environment_id: str) -> list[Solution]:
        """Every solution of the environment, by key (a host has a handful, not thousands)."""
        statement = (
            select(Solution).where(Solution.environment_id == environment_id).order_by(Solution.key)
        )
        return list(self.session.scalars(statement))

    def add(self, solution: Solution) -> Solution:
        self.session.add(solution)
        self.session.flush()
        return solution

    def delete(self, solution: Solution) -> None:
        """Delete the solution; its slots and instances go with it."""
        self.session.delete(solution)
        self.session.flush()

    # -- instances ------------------------------------------------------------------------------

    def get_instance(self, environment_id: str, instance_id: str) -> SolutionInstance | None:
        statement = select(SolutionInstance).where(
            SolutionInstance.environment_id == environment_id, SolutionInstance.id == instance_id
        )
        return self.session.scalars(statement).first()

    def instances_of(self, solution_id: str) -> list[SolutionInstance]:
        statement = select(SolutionInstance).where(SolutionInstance.solution_id == solution_id)
        return list(self.session.scalars(statement))

    def count_instances(self, solution_id: str) -> int:
        statement = select(func.count()).where(SolutionInstance.solution_id == solution_id)
        return self.session.scalar(statement) or 0

    def list_instances(
        self,
        environment_id: str,
        *,
        end_user_id: str | None = None,
        solution_id: str | None = None,
        auth_id: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[SolutionInstance]:
        """One page of instances, oldest first, optionally of one end user, solution or auth."""
        statement = select(SolutionInstance).where(
            SolutionInstance.environment_id == environment_id
        )
        if end_user_id is not None:
            statement = statement.where(SolutionInstance.end_user_id == end_user_id)
        if solution_id is not None:
            statement = statement.where(SolutionInstance.solution_id == solution_id)
        if auth_id is not None:
            using = select(SolutionInstanceAuth.instance_id).where(
                SolutionInstanceAuth.auth_id == auth_id
            )
            statement = statement.where(SolutionInstance.id.in_(using))
        return fetch_page(
            self.session,
            statement,
            SolutionInstance.created_at,
            SolutionInstance.id,
            limit=limit,
            cursor=cursor,
        )

    def add_instance(self, instance: SolutionInstance) -> SolutionInstance:
        self.session.add(instance)
        self.session.flush()
        return instance

    def delete_instance(self, instance: SolutionInstance) -> None:
        self.session.delete(instance)
        self.session.flush()

    # -- the authentications instances use -------------------------------------------------------

    def uses_of(self, auth_id: str) -> list[AuthUse]:
        """Every slot of every instance the authentication fills, and whether it is force-unique."""
        statement = (
            select(
                SolutionInstanceAuth.instance_id,
                SolutionInstanceAuth.external_id,
                AuthSlot.force_unique,
            )
            .join(SolutionInstance, SolutionInstance.id == SolutionInstanceAuth.instance_id)
            .join(
                AuthSlot,
                and_(
                    AuthSlot.solution_id == SolutionInstance.solution_id,
                    AuthSlot.external_id == SolutionInstanceAuth.external_id,
                ),
                isouter=True,
            )
            .where(SolutionInstanceAuth.auth_id == auth_id)
            .order_by(SolutionInstanceAuth.instance_id, SolutionInstanceAuth.external_id)
        )
        return [
            AuthUse(row.instance_id, row.external_id, bool(row.force_unique))
            for row in self.session.execute(statement)
        ]

    def lock_authentication(
        self, environment_id: str, auth_id: str, *, now: datetime
    ) -> Authentication | None:
        """The served authentication, row-locked until the transaction ends (PostgreSQL).

        Two transactions filling force-unique slots with the same authentication thus check
        its uses one after the other; SQLite writers are serialised anyway.
        """
        statement = (
            select(Authentication)
            .where(
                Authentication.environment_id == environment_id,
                Authentication.id == auth_id,
                served_at(now),
            )
            .with_for_update()
        )
        return self.session.scalars(statement).first()

    def authentications(
        self, environment_id: str, auth_ids: Iterable[str], *, now: datetime
    ) -> dict[str, Authentication]:
        """The served authentications among ``auth_ids``, by id, in one query."""
        wanted = set(auth_ids)
        if not wanted:
            return {}
        statement = select(Authentication).where(
            Authentication.environment_id == environment_id,
            Authentication.id.in_(wanted),
            served_at(now),
        )
        return {auth.id: auth for auth in self.session.scalars(statement)}

    def active_authentications_of(
        self, environment_id: str, end_user_id: str, connector_key: str, *, now: datetime
    ) -> list[Authentication]:
        """The end user's active, served authentications of one connector, oldest first."""
        statement = (
            select(Authentication)
            .where(
                Authentication.environment_id == environment_id,
                Authentication.end_user_id == end_user_id,
                Authentication.connector_key == connector_key,
                Authentication.status == AuthStatus.ACTIVE,
                served_at(now),
            )
            .order_by(Authentication.created_at, Authentication.id)
        )
        return list(self.session.scalars(statement))
