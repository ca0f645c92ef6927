"""Solution instances: one end user's copy of a solution, its auth and config values.

A master token manages every instance (naming the end user); a user token manages only its own
end user's (others read as "not found"). The rules, each refused with an error naming the slot:

* external ids are case-sensitive and must be slots of the solution;
* an authentication filling a slot belongs to the instance's owner, is ``active``, is of the
  slot's connector (and that version's auth type, and the slot's variant when it names one)
  and carries every scope of the slot;
* a force-unique slot takes no authentication another instance uses, and an authentication
  filling a force-unique slot is used nowhere else;
* a static slot always holds the solution's shared authentication: it fills itself and cannot
  be set;
* an instance is enabled only when every auth slot is filled and every config value (after
  defaults) matches its schema; enabling right after creating works at once.

Deleting an authentication removes it from every instance (foreign key cascade); an enabled
instance that thereby loses a slot stays enabled, but :func:`missing_for_enable` names the slot
(the API shows ``complete: false``) and a change that would leave it missing more is refused.
Every change is audited with the slots' external ids, never with values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications.service import check_name
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.solutions.repository import SolutionRepository
from authbridge.solutions.rules import (
    INSTANCE,
    audit,
    effective_config,
    extra_scopes,
    get_solution,
    misfit,
    missing_for_enable,
    require_complete,
    solution_of,
    touch,
    unknown_slot,
)
from authbridge.solutions.specs import TextValue, read_text, value_problems
from authbridge.storage.models import (
    Authentication,
    AuthSlot,
    Solution,
    SolutionInstance,
    SolutionInstanceAuth,
    new_id,
)
from authbridge.storage.pagination import DEFAULT_PAGE_SIZE
from authbridge.storage.repositories import Page
from authbridge.tenancy.repository import EndUserRepository

__all__ = [
    "create_instance",
    "delete_instance",
    "effective_config",
    "eligible_auths",
    "end_user_id_for",
    "get_instance",
    "list_instances",
    "missing_for_enable",
    "update_instance",
]


def end_user_id_for(session: Session, principal: Principal, external_user_id: str | None) -> str:
    """The end user an instance is for: a user token's own, else the named one (master),
    added on first sight like an import does."""
    if principal.end_user_id is not None:
        if external_user_id not in (None, principal.external_user_id):
            raise errors.Forbidden("a user token manages only its own end user's instances")
        return principal.end_user_id
    if not external_user_id:
        raise errors.InvalidInput(
            "external_user_id is required with a master token", field="external_user_id"
        )
    users = EndUserRepository(session)
    return users.get_or_create(principal.environment_id, external_user_id).id


def get_instance(
    bridge: Bridge, session: Session, principal: Principal, instance_id: str
) -> SolutionInstance:
    instance = SolutionRepository(session).get_instance(principal.environment_id, instance_id)
    if instance is None:
        raise errors.NotFound(f"solution instance '{instance_id}' not found")
    principal.check_owner(instance.end_user_id, what=f"solution instance '{instance_id}'")
    return instance


def list_instances(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    *,
    end_user_id: str | None = None,
    solution_id: str | None = None,
    auth_id: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> Page[SolutionInstance]:
    """One page of instances, oldest first; a user token sees only its own."""
    if principal.end_user_id is not None:
        if end_user_id not in (None, principal.end_user_id):
            return Page(items=[], next_cursor=None)
        end_user_id = principal.end_user_id
    if solution_id is not None:
        solution_id = get_solution(bridge, session, principal, solution_id).id
    return SolutionRepository(session).list_instances(
        principal.environment_id,
        end_user_id=end_user_id,
        solution_id=solution_id,
        auth_id=auth_id,
        limit=limit,
        cursor=cursor,
    )


def create_instance(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    *,
    solution_id: str,
    end_user_id: str | None,
    name: str,
    auth_values: Mapping[str, str | None] | None = None,
    config_values: Mapping[str, Any] | None = None,
    enabled: bool = False,
) -> SolutionInstance:
    """Create an end user's instance (``end_user_id`` is the internal id; a user token's own
    end user when omitted). Static slots fill themselves; with ``enabled`` it must be complete.
    """
    solution = get_solution(bridge, session, principal, solution_id)
    if principal.end_user_id is not None:
        if end_user_id not in (None, principal.end_user_id):
            raise errors.Forbidden("a user token manages only its own end user's instances")
        owner = principal.end_user_id
    elif end_user_id is None:
        raise errors.InvalidInput("the instance needs an end user", field="end_user_id")
    elif EndUserRepository(session).get(principal.environment_id, end_user_id) is None:
        raise errors.NotFound(f"end user '{end_user_id}' not found")
    else:
        owner = end_user_id
    now = bridge.now()
    instance = SolutionInstance(
        id=new_id(),
        environment_id=principal.environment_id,
        solution_id=solution.id,
        end_user_id=owner,
        name=check_name(name),
        enabled=False,
        config_values={},
        created_at=now,
        updated_at=now,
        version=1,
    )
    instance.auth_values = [
        SolutionInstanceAuth(external_id=slot.external_id, auth_id=slot.static_auth_id)
        for slot in solution.auth_slots
        if slot.static and slot.static_auth_id is not None
    ]
    auth_slots = _set_auth_values(bridge, session, principal, solution, instance, auth_values or {})
    config_slots = _set_config_values(solution, instance, config_values or {})
    SolutionRepository(session).add_instance(instance)
    if enabled:
        require_complete(solution, instance)
        instance.enabled = True
        session.flush()
    detail = {
        "solution": solution.key,
        "auth_slots": auth_slots,
        "config_slots": config_slots,
        "enabled": instance.enabled,
    }
    audit(session, principal, "solution_instance.created", INSTANCE, instance.id, detail, now)
    return instance


def update_instance(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    instance_id: str,
    *,
    name: str | None = None,
    auth_values: Mapping[str, str | None] | None = None,
    config_values: Mapping[str, Any] | None = None,
    enabled: bool | None = None,
) -> SolutionInstance:
    """Change an instance. Values are merged (``None`` clears a slot; a cleared config value
    falls back to its default). Enabling needs a complete instance
    (:class:`errors.Conflict` lists what is missing); an enabled instance cannot be changed
    into a less complete one."""
    instance = get_instance(bridge, session, principal, instance_id)
    solution = solution_of(session, instance)
    missing_before = set(missing_for_enable(solution, instance))
    fields = []
    auth_slots: list[str] = []
    config_slots: list[str] = []
    if name is not None:
        instance.name = check_name(name)
        fields.append("name")
    if auth_values is not None:
        auth_slots = _set_auth_values(bridge, session, principal, solution, instance, auth_values)
    if config_values is not None:
        config_slots = _set_config_values(solution, instance, config_values)
    if enabled is not None and enabled != instance.enabled:
        fields.append("enabled")
    if enabled:
        require_complete(solution, instance)
    elif instance.enabled and enabled is None:
        worse = [m for m in missing_for_enable(solution, instance) if m not in missing_before]
        if worse:
            raise errors.Conflict(
                f"solution instance '{instance.id}' is enabled and would no longer be complete: "
                + "; ".join(worse)
                + " (disable it in the same request to change it anyway)"
            )
    if enabled is not None:
        instance.enabled = enabled
    if not (fields or auth_slots or config_slots):
        return instance
    now = bridge.now()
    touch(instance, now)
    session.flush()
    detail = {"fields": fields, "auth_slots": auth_slots, "config_slots": config_slots}
    audit(session, principal, "solution_instance.updated", INSTANCE, instance.id, detail, now)
    return instance


def delete_instance(
    bridge: Bridge, session: Session, principal: Principal, instance_id: str
) -> None:
    instance = get_instance(bridge, session, principal, instance_id)
    SolutionRepository(session).delete_instance(instance)
    audit(
        session,
        principal,
        "solution_instance.deleted",
        INSTANCE,
        instance.id,
        {"solution_id": instance.solution_id},
        bridge.now(),
    )


def eligible_auths(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    instance_or_none: SolutionInstance | None,
    slot: AuthSlot,
    end_user_id: str,
) -> list[Authentication]:
    """The authentications the wizard may offer for a visible slot, oldest first.

    The end user's active authentications of the slot's connector that fit it; for a
    force-unique slot, none used by another instance. A static slot offers none.
    """
    principal.check_owner(end_user_id, what=f"end user '{end_user_id}'")
    if slot.static:
        return []
    repo = SolutionRepository(session)
    now = bridge.now()
    candidates = repo.active_authentications_of(
        principal.environment_id, end_user_id, slot.connector_key, now=now
    )
    this = instance_or_none.id if instance_or_none is not None else None
    offered = []
    for auth in candidates:
        if misfit(bridge, auth, slot) is not None:
            continue
        others = [use for use in repo.uses_of(auth.id) if use.instance_id != this]
        if others and (slot.force_unique or any(use.force_unique for use in others)):
            continue
        offered.append(auth)
    return offered


# -- the rules ----------------------------------------------------------------------------------


def _set_auth_values(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    solution: Solution,
    instance: SolutionInstance,
    values: Mapping[str, str | None],
) -> list[str]:
    """Fill (or with ``None`` clear) auth slots; return the external ids that changed."""
    slots = {slot.external_id: slot for slot in solution.auth_slots}
    changed = []
    for external_id, auth_id in values.items():
        slot = slots.get(external_id)
        field = f"authValues.{external_id}"
        if slot is None:
            message = unknown_slot("auth", external_id, solution, slots)
            raise errors.InvalidInput(f"authValues: {message}", field="authValues")
        current = next((r for r in instance.auth_values if r.external_id == external_id), None)
        if slot.static:
            if auth_id != slot.static_auth_id or auth_id is None:
                raise errors.InvalidInput(
                    f"{field}: the slot is static; it always holds the solution's shared "
                    "authentication and cannot be set",
                    field=field,
                )
            continue
        if auth_id is None:
            if current is not None:
                instance.auth_values.remove(current)
                changed.append(external_id)
            continue
        if current is not None and current.auth_id == auth_id:
            continue
        auth = _check_auth(bridge, session, principal, instance, slot, auth_id)
        extra = extra_scopes(auth, slot)
        if current is not None:
            current.auth_id = auth_id
            current.extra_scopes = extra
        else:
            instance.auth_values.append(
                SolutionInstanceAuth(external_id=external_id, auth_id=auth_id, extra_scopes=extra)
            )
        changed.append(external_id)
    return changed


def _check_auth(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    instance: SolutionInstance,
    slot: AuthSlot,
    auth_id: str,
) -> Authentication:
    """The authentication ``auth_id``, locked, once it may fill ``slot`` of ``instance``."""
    field = f"authValues.{slot.external_id}"
    repo = SolutionRepository(session)
    auth = repo.lock_authentication(principal.environment_id, auth_id, now=bridge.now())
    if auth is None or (
        principal.end_user_id is not None and auth.end_user_id != principal.end_user_id
    ):
        raise errors.NotFound(f"{field}: authentication '{auth_id}' not found")
    if auth.end_user_id != instance.end_user_id:
        raise errors.InvalidInput(
            f"{field}: authentication '{auth_id}' belongs to another end user; an instance "
            "uses its owner's authentications",
            field=field,
        )
    reason = misfit(bridge, auth, slot)
    if reason is not None:
        raise errors.InvalidInput(f"{field}: authentication '{auth_id}' {reason}", field=field)
    for use in repo.uses_of(auth.id):
        if use.instance_id == instance.id:
            continue
        if slot.force_unique:
            raise errors.Conflict(
                f"{field}: the slot is force-unique and authentication '{auth_id}' is already "
                f"used by solution instance '{use.instance_id}'; connect a new account for it"
            )
        if use.force_unique:
            raise errors.Conflict(
                f"{field}: authentication '{auth_id}' is the force-unique authentication of "
                f"slot '{use.external_id}' of solution instance '{use.instance_id}'; it cannot "
                "be used elsewhere"
            )
    return auth


def _set_config_values(
    solution: Solution, instance: SolutionInstance, values: Mapping[str, Any]
) -> list[str]:
    """Set (or with ``None`` clear) config values, each checked against its schema; a
    :class:`TextValue` is read as that schema takes it."""
    slots = {slot.external_id: slot for slot in solution.config_slots}
    merged = dict(instance.config_values or {})
    changed = []
    for external_id, value in values.items():
        slot = slots.get(external_id)
        if slot is None:
            message = unknown_slot("config", external_id, solution, slots)
            raise errors.InvalidInput(f"configValues: {message}", field="configValues")
        field = f"configValues.{external_id}"
        if isinstance(value, TextValue):
            value = read_text(slot.json_schema, value, field)
        if value is None:
            if merged.pop(external_id, None) is not None:
                changed.append(external_id)
            continue
        problems = value_problems(slot.json_schema, value, field)
        if problems:
            raise errors.InvalidInput("; ".join(problems), field=field)
        if merged.get(external_id) != value or external_id not in merged:
            merged[external_id] = value
            changed.append(external_id)
    instance.config_values = merged
    return changed
