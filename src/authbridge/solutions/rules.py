"""What solutions and instances share: lookups, an auth's fit to a slot, completeness, audit.

Shared by the solution use cases (``solutions/service.py``), the instance use cases
(``solutions/instances.py``) and the pages and APIs built on them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.solutions.repository import SolutionRepository
from authbridge.solutions.specs import trigger_url, value_problems
from authbridge.storage.models import (
    Authentication,
    AuthSlot,
    AuthStatus,
    Solution,
    SolutionInstance,
)
from authbridge.tenancy.repository import AuditRepository

SOLUTION = "solution"
INSTANCE = "solution_instance"


def get_solution(
    bridge: Bridge, session: Session, principal: Principal, solution_id_or_key: str
) -> Solution:
    """The solution with this id or key; any token of the environment may read it."""
    repo = SolutionRepository(session)
    solution = repo.get(principal.environment_id, solution_id_or_key) or repo.get_by_key(
        principal.environment_id, solution_id_or_key
    )
    if solution is None:
        raise errors.NotFound(f"solution '{solution_id_or_key}' not found")
    return solution


def find_solution(session: Session, environment_id: str, solution_id: str) -> Solution | None:
    """The environment's solution with this id, or ``None``."""
    return SolutionRepository(session).get(environment_id, solution_id)


def solution_of(session: Session, instance: SolutionInstance) -> Solution:
    solution = SolutionRepository(session).get(instance.environment_id, instance.solution_id)
    assert solution is not None  # the foreign key cascades: no instance outlives its solution
    return solution


def effective_config(solution: Solution, instance: SolutionInstance) -> dict[str, Any]:
    """The instance's config values with defaults filled in, for the solution's slots only."""
    values = instance.config_values or {}
    effective = {}
    for slot in solution.config_slots:
        if slot.external_id in values:
            effective[slot.external_id] = values[slot.external_id]
        elif slot.default is not None:
            effective[slot.external_id] = slot.default
    return effective


def missing_for_enable(solution: Solution, instance: SolutionInstance) -> list[str]:
    """Why the instance cannot be enabled yet, one reason per slot; empty when it can."""
    reasons = []
    filled = {row.external_id for row in instance.auth_values}
    for slot in solution.auth_slots:
        if slot.external_id in filled:
            continue
        if slot.static:
            reasons.append(
                f"auth slot '{slot.external_id}' is static and its shared authentication is "
                "gone: apply the solution with a new staticAuthId"
            )
        else:
            reasons.append(f"auth slot '{slot.external_id}' has no authentication")
    values = effective_config(solution, instance)
    for config in solution.config_slots:
        if config.external_id not in values:
            reasons.append(f"config slot '{config.external_id}' has no value")
            continue
        problems = value_problems(
            config.json_schema, values[config.external_id], f"configValues.{config.external_id}"
        )
        reasons += problems
    return reasons


def require_complete(solution: Solution, instance: SolutionInstance) -> None:
    missing = missing_for_enable(solution, instance)
    if missing:
        raise errors.Conflict(
            f"solution instance '{instance.id}' cannot be enabled yet: " + "; ".join(missing)
        )


WORKFLOW_NAMESPACE = uuid.UUID("5b7f2a52-8f0e-4f7e-9d53-0c0c6f3b6a10")


@dataclass(frozen=True)
class InstanceWorkflow:
    """One of a solution's workflows as one instance has it: its own id (stable, derived from
    the instance and the workflow's key) and trigger URL."""

    id: str
    key: str
    title: str
    trigger_url: str


def workflows_of(solution: Solution, instance: SolutionInstance) -> list[InstanceWorkflow]:
    """The solution's workflows, their trigger URLs filled in for ``instance``."""
    found = []
    for workflow in solution.workflows or ():
        key = workflow["key"]
        found.append(
            InstanceWorkflow(
                id=str(uuid.uuid5(WORKFLOW_NAMESPACE, f"{instance.id}/{key}")),
                key=key,
                title=workflow.get("title") or key,
                trigger_url=trigger_url(
                    workflow["trigger_url"],
                    instance.id,
                    solution.id,
                    solution.key,
                    key,
                    instance.end_user_id,
                ),
            )
        )
    return found


def extra_scopes(auth: Authentication, slot: AuthSlot) -> list[str]:
    """The scopes ``auth`` was granted beyond those ``slot`` asks for (none when the slot
    names no scopes: it then asks for the connector's own)."""
    if not slot.scopes:
        return []
    return [scope for scope in auth.scopes or () if scope not in slot.scopes]


def misfit(bridge: Bridge, auth: Authentication, slot: AuthSlot) -> str | None:
    """Why ``auth`` cannot fill ``slot`` (phrased after the authentication), or ``None``."""
    if auth.connector_key != slot.connector_key:
        return f"is a '{auth.connector_key}' authentication; the slot needs '{slot.connector_key}'"
    if slot.connector_key in bridge.registry:
        versions = {c.version: c for c in bridge.registry.versions(slot.connector_key)}
        connector = versions.get(slot.connector_version)
        if connector is not None and connector.auth_type != auth.auth_type:
            return (
                f"is of type {auth.auth_type}; version {slot.connector_version} of "
                f"'{slot.connector_key}' uses {connector.auth_type}"
            )
        if slot.connector_variant is not None:
            default = connector.default_variant if connector is not None else None
            variant = auth.connector_variant or default
            if variant != slot.connector_variant:
                return (
                    f"is for variant '{variant or 'default'}'; the slot needs "
                    f"'{slot.connector_variant}'"
                )
    missing = [scope for scope in slot.scopes or () if scope not in (auth.scopes or ())]
    if missing:
        return f"lacks the scope(s) {', '.join(missing)} the slot needs"
    extra = extra_scopes(auth, slot)
    if extra and slot.on_extra_scopes == "refuse":
        return (
            f"was granted the scope(s) {', '.join(extra)} beyond the slot's, which refuses "
            "wider grants"
        )
    if auth.status is not AuthStatus.ACTIVE:
        return f"is {auth.status.value}; the end user must reconnect it"
    return None


def unknown_slot(kind: str, external_id: str, solution: Solution, known: Iterable[str]) -> str:
    names = list(known)
    close = [name for name in names if name.lower() == external_id.lower()]
    hint = f"; did you mean '{close[0]}'? external ids are case-sensitive" if close else ""
    listed = ", ".join(f"'{name}'" for name in names) or "none"
    return (
        f"'{external_id}' is not one of the {kind} slots of solution '{solution.key}' "
        f"({listed}){hint}"
    )


def touch(instance: SolutionInstance, now: datetime) -> None:
    instance.updated_at = now
    instance.version = (instance.version or 0) + 1


def audit(
    session: Session,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str,
    detail: Mapping[str, Any],
    now: datetime,
) -> None:
    AuditRepository(session).record(
        environment_id=principal.environment_id,
        actor=principal.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
        now=now,
    )
