"""Solutions: what a host offers its end users, declared as auth slots and config slots.

A master token applies solution specs (create, or update in place by key; a YAML file through
``authbridge solutions apply``); any token of the environment reads them. This module is also
the one entry point of the whole model: it re-exports the spec types and the instance use
cases (``solutions/instances.py``), whose docstring lists the rules.

A static slot's shared authentication (``static_auth_id``) may be any authentication of the
environment the host chooses, of the slot's connector, active and with the slot's scopes; one
without an end user is the natural choice (stored by the host for everyone), but the host may
also share an account it connected as an end user of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.solutions.instances import (
    create_instance,
    delete_instance,
    eligible_auths,
    end_user_id_for,
    get_instance,
    list_instances,
    update_instance,
)
from authbridge.solutions.repository import SolutionRepository
from authbridge.solutions.rules import (
    SOLUTION,
    InstanceWorkflow,
    audit,
    effective_config,
    extra_scopes,
    get_solution,
    misfit,
    missing_for_enable,
    solution_of,
    touch,
    workflows_of,
)
from authbridge.solutions.specs import (
    AuthSlotSpec,
    ConfigSlotSpec,
    SolutionSpec,
    TextValue,
    WorkflowSpec,
    parse_solution_spec,
)
from authbridge.storage.models import (
    AuthSlot,
    ConfigSlot,
    Solution,
    SolutionInstance,
    SolutionInstanceAuth,
    new_id,
)

__all__ = [
    "Applied",
    "AuthSlotSpec",
    "ConfigSlotSpec",
    "InstanceWorkflow",
    "SolutionSpec",
    "TextValue",
    "WorkflowSpec",
    "apply_solution",
    "apply_solution_changes",
    "changes",
    "create_instance",
    "delete_instance",
    "delete_solution",
    "effective_config",
    "eligible_auths",
    "end_user_id_for",
    "extra_scopes",
    "get_instance",
    "get_solution",
    "list_instances",
    "list_solutions",
    "missing_for_enable",
    "parse_solution_spec",
    "solution_of",
    "spec_of",
    "update_instance",
    "workflows_of",
]


def list_solutions(bridge: Bridge, session: Session, principal: Principal) -> list[Solution]:
    return SolutionRepository(session).list_solutions(principal.environment_id)


@dataclass(frozen=True)
class Applied:
    """What applying a spec did: the solution, whether it is new, and the changes made."""

    solution: Solution
    created: bool
    changes: list[str]


def apply_solution(
    bridge: Bridge, session: Session, principal: Principal, spec: SolutionSpec
) -> Solution:
    """Create the solution ``spec.key``, or update it in place (master token only).

    Slots are matched by external id: new ones are added, missing ones removed (with their
    values in every instance), the others changed in place. Instances keep the values of the
    slots that remain, except an authentication that no longer fits its changed slot; static
    slots of every instance take the (new) shared authentication.
    """
    return apply_solution_changes(bridge, session, principal, spec).solution


def apply_solution_changes(
    bridge: Bridge, session: Session, principal: Principal, spec: SolutionSpec
) -> Applied:
    """:func:`apply_solution`, telling what changed (for the CLI and the REST answer)."""
    principal.require_master()
    now = bridge.now()
    auth_rows = [
        _auth_slot_row(bridge, session, principal, i, s) for i, s in enumerate(spec.auth_slots)
    ]
    config_rows = [
        ConfigSlot(
            id=new_id(),
            external_id=slot.external_id,
            title=slot.title,
            json_schema=dict(slot.schema),
            default=slot.default,
            hidden=slot.hidden,
            position=index,
        )
        for index, slot in enumerate(spec.config_slots)
    ]
    repo = SolutionRepository(session)
    solution = repo.get_by_key(principal.environment_id, spec.key)
    if solution is None:
        created = _create_solution(session, principal, spec, auth_rows, config_rows, now)
        return Applied(created, True, changes(bridge, None, spec))
    summary = changes(bridge, solution, spec)
    if not summary:
        return Applied(solution, False, [])
    solution.title = spec.title
    solution.description = spec.description
    solution.workflows = _workflow_rows(spec)
    solution.updated_at = now
    retuned = _merge_slots(solution.auth_slots, auth_rows, _AUTH_FIELDS)
    _merge_slots(solution.config_slots, config_rows, _CONFIG_FIELDS)
    session.flush()
    synced = sum(
        _sync_instance(bridge, session, principal, solution, instance, retuned, now)
        for instance in repo.instances_of(solution.id)
    )
    if synced:
        summary.append(f"update the values of {synced} instance(s)")
    audit(session, principal, "solution.updated", SOLUTION, solution.id, {"changes": summary}, now)
    return Applied(solution, False, summary)


def _create_solution(
    session: Session,
    principal: Principal,
    spec: SolutionSpec,
    auth_rows: list[AuthSlot],
    config_rows: list[ConfigSlot],
    now: datetime,
) -> Solution:
    solution = Solution(
        id=new_id(),
        environment_id=principal.environment_id,
        key=spec.key,
        title=spec.title,
        description=spec.description,
        workflows=_workflow_rows(spec),
        created_at=now,
        updated_at=now,
        auth_slots=auth_rows,
        config_slots=config_rows,
    )
    try:
        with session.begin_nested():
            SolutionRepository(session).add(solution)
    except IntegrityError:
        raise errors.Conflict(
            f"solution '{spec.key}' was created meanwhile; apply the spec again to update it"
        ) from None
    detail = {
        "key": spec.key,
        "auth_slots": [slot.external_id for slot in auth_rows],
        "config_slots": [slot.external_id for slot in config_rows],
    }
    audit(session, principal, "solution.created", SOLUTION, solution.id, detail, now)
    return solution


def _workflow_rows(spec: SolutionSpec) -> list[dict[str, str]]:
    return [{"key": w.key, "title": w.title, "trigger_url": w.trigger_url} for w in spec.workflows]


def _workflows_of(solution: Solution) -> tuple[WorkflowSpec, ...]:
    return tuple(
        WorkflowSpec(key=w["key"], title=w.get("title") or w["key"], trigger_url=w["trigger_url"])
        for w in solution.workflows or ()
    )


_AUTH_FIELDS = (
    "title",
    "connector_key",
    "connector_version",
    "connector_variant",
    "scopes",
    "hidden",
    "static",
    "static_auth_id",
    "force_unique",
    "on_extra_scopes",
    "position",
)

_CONFIG_FIELDS = ("title", "json_schema", "default", "hidden", "position")

#: Changing one of these re-checks the authentications instances hold in the slot.
_FIT_FIELDS = frozenset(
    {"connector_key", "connector_version", "connector_variant", "scopes", "on_extra_scopes"}
)


def _merge_slots(current: list[Any], wanted: Sequence[Any], fields: Sequence[str]) -> set[str]:
    """Make ``current`` (a slot relationship) hold ``wanted``, matched by external id.

    Return the external ids of existing slots whose authentication requirements changed.
    """
    by_id = {slot.external_id: slot for slot in current}
    wanted_ids = {slot.external_id for slot in wanted}
    for slot in [slot for slot in current if slot.external_id not in wanted_ids]:
        current.remove(slot)
    retuned = set()
    for row in wanted:
        existing = by_id.get(row.external_id)
        if existing is None:
            current.append(row)
            continue
        for name in fields:
            if getattr(existing, name) != getattr(row, name):
                setattr(existing, name, getattr(row, name))
                if name in _FIT_FIELDS:
                    retuned.add(row.external_id)
    current.sort(key=lambda slot: slot.position)
    return retuned


def _auth_slot_row(
    bridge: Bridge, session: Session, principal: Principal, index: int, spec: AuthSlotSpec
) -> AuthSlot:
    """The slot as stored, its connector version resolved; the static auth checked."""
    path = f"authSlots[{index}]"
    try:
        connector = bridge.registry.get(spec.connector, spec.version)
    except errors.ConnectorNotFound as error:
        field = f"{path}.version" if spec.connector in bridge.registry else f"{path}.connector"
        raise errors.InvalidInput(f"{field}: {error.message}", field=field) from None
    variants = list(connector.manifest.variants)
    if spec.variant is not None and spec.variant not in variants:
        known = f"its variants: {', '.join(variants)}" if variants else "it declares none"
        raise errors.InvalidInput(
            f"{path}.variant: connector '{connector.key}' has no variant '{spec.variant}' "
            f"({known})",
            field=f"{path}.variant",
        )
    row = AuthSlot(
        id=new_id(),
        external_id=spec.external_id,
        title=spec.title,
        connector_key=connector.key,
        connector_version=connector.version,
        connector_variant=spec.variant,
        scopes=list(spec.scopes),
        hidden=spec.hidden or spec.static,
        static=spec.static,
        static_auth_id=spec.static_auth_id,
        force_unique=spec.force_unique,
        on_extra_scopes=spec.on_extra_scopes,
        position=index,
    )
    if spec.static_auth_id is not None:
        found = SolutionRepository(session).authentications(
            principal.environment_id, [spec.static_auth_id], now=bridge.now()
        )
        auth = found.get(spec.static_auth_id)
        field = f"{path}.staticAuthId"
        if auth is None:
            raise errors.InvalidInput(
                f"{field}: authentication '{spec.static_auth_id}' not found", field=field
            )
        reason = misfit(bridge, auth, row)
        if reason is not None:
            raise errors.InvalidInput(f"{field}: authentication '{auth.id}' {reason}", field=field)
    return row


def changes(bridge: Bridge, before: Solution | None, spec: SolutionSpec) -> list[str]:
    """What applying ``spec`` over ``before`` changes, one line each (for people and the log).

    Call it before :func:`apply_solution`, which changes ``before`` in place.
    """
    if before is None:
        return [f"create solution '{spec.key}'"]
    lines = []
    if before.title != spec.title:
        lines.append("title")
    if before.description != spec.description:
        lines.append("description")
    if _workflows_of(before) != spec.workflows:
        lines.append("workflows")
    for kind, old, new in (
        ("auth slot", [s.external_id for s in before.auth_slots], spec.auth_slots),
        ("config slot", [s.external_id for s in before.config_slots], spec.config_slots),
    ):
        new_ids = [slot.external_id for slot in new]
        lines += [f"add {kind} '{x}'" for x in new_ids if x not in old]
        lines += [f"remove {kind} '{x}'" for x in old if x not in new_ids]
    kept = {slot.external_id: slot for slot in before.auth_slots}
    for slot in spec.auth_slots:
        old_slot = kept.get(slot.external_id)
        if old_slot is not None and _auth_spec_of(old_slot) != _normalised(bridge, slot):
            lines.append(f"change auth slot '{slot.external_id}'")
    kept_config = {slot.external_id: slot for slot in before.config_slots}
    for config in spec.config_slots:
        old_config = kept_config.get(config.external_id)
        if old_config is not None and _config_spec_of(old_config) != config:
            lines.append(f"change config slot '{config.external_id}'")
    order = [s.external_id for s in before.auth_slots], [s.external_id for s in before.config_slots]
    if not lines and order != (
        [s.external_id for s in spec.auth_slots],
        [s.external_id for s in spec.config_slots],
    ):
        lines.append("slot order")
    return lines


def _normalised(bridge: Bridge, slot: AuthSlotSpec) -> AuthSlotSpec:
    """``slot`` as it would be stored: its version resolved, hidden when static."""
    version = slot.version
    if version is None and slot.connector in bridge.registry:
        version = bridge.registry.get(slot.connector).version
    return replace(slot, version=version, hidden=slot.hidden or slot.static)


def _auth_spec_of(slot: AuthSlot) -> AuthSlotSpec:
    return AuthSlotSpec(
        external_id=slot.external_id,
        title=slot.title,
        connector=slot.connector_key,
        version=slot.connector_version,
        variant=slot.connector_variant,
        scopes=tuple(slot.scopes or ()),
        hidden=slot.hidden,
        static=slot.static,
        static_auth_id=slot.static_auth_id,
        force_unique=slot.force_unique,
        on_extra_scopes="refuse" if slot.on_extra_scopes == "refuse" else "flag",
    )


def _config_spec_of(slot: ConfigSlot) -> ConfigSlotSpec:
    return ConfigSlotSpec(
        external_id=slot.external_id,
        title=slot.title,
        schema=dict(slot.json_schema or {}),
        default=slot.default,
        hidden=slot.hidden,
    )


def spec_of(solution: Solution) -> SolutionSpec:
    """The spec that would produce ``solution`` (versions pinned as applied)."""
    return SolutionSpec(
        key=solution.key,
        title=solution.title,
        description=solution.description,
        auth_slots=tuple(_auth_spec_of(slot) for slot in solution.auth_slots),
        config_slots=tuple(_config_spec_of(slot) for slot in solution.config_slots),
        workflows=_workflows_of(solution),
    )


def _sync_instance(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    solution: Solution,
    instance: SolutionInstance,
    retuned: set[str],
    now: datetime,
) -> bool:
    """Bring an instance in line with its solution's (changed) slots; return if it changed."""
    slots = {slot.external_id: slot for slot in solution.auth_slots}
    auths = SolutionRepository(session).authentications(
        principal.environment_id, (row.auth_id for row in instance.auth_values), now=now
    )
    changed = False
    for row in list(instance.auth_values):
        slot = slots.get(row.external_id)
        auth = auths.get(row.auth_id)
        if slot is not None and slot.static:
            if slot.static_auth_id is None:
                instance.auth_values.remove(row)
                changed = True
            elif row.auth_id != slot.static_auth_id:
                row.auth_id = slot.static_auth_id
                changed = True
        elif slot is None or (
            row.external_id in retuned and (auth is None or misfit(bridge, auth, slot))
        ):
            instance.auth_values.remove(row)
            changed = True
        elif row.external_id in retuned and auth is not None:
            extra = extra_scopes(auth, slot)
            if list(row.extra_scopes or ()) != extra:
                row.extra_scopes = extra
                changed = True
    filled = {row.external_id for row in instance.auth_values}
    for slot in solution.auth_slots:
        if slot.static and slot.static_auth_id is not None and slot.external_id not in filled:
            instance.auth_values.append(
                SolutionInstanceAuth(external_id=slot.external_id, auth_id=slot.static_auth_id)
            )
            changed = True
    config_ids = {slot.external_id for slot in solution.config_slots}
    values = instance.config_values or {}
    if any(key not in config_ids for key in values):
        instance.config_values = {k: v for k, v in values.items() if k in config_ids}
        changed = True
    if changed:
        touch(instance, now)
    session.flush()
    return changed


def delete_solution(
    bridge: Bridge, session: Session, principal: Principal, solution_id: str
) -> int:
    """Delete the solution (by id or key) and its instances; return how many instances went."""
    principal.require_master()
    solution = get_solution(bridge, session, principal, solution_id)
    repo = SolutionRepository(session)
    count = repo.count_instances(solution.id)
    detail = {"key": solution.key, "instances": count}
    repo.delete(solution)
    audit(session, principal, "solution.deleted", SOLUTION, solution.id, detail, bridge.now())
    return count
