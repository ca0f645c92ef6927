"""``/v1/solutions`` (master tokens write, every token reads) and ``/v1/solution-instances``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.api.schemas import PageOut
from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from authbridge.solutions.schemas import (
    SPEC_EXAMPLE,
    InstanceCreate,
    InstanceOut,
    InstanceUpdate,
    SolutionApplied,
    SolutionOut,
    auth_values_of,
    config_values_of,
)
from authbridge.storage.models import SolutionInstance
from authbridge.storage.pagination import MAX_PAGE_SIZE
from authbridge.tenancy import service as tenancy

router = APIRouter(tags=["solutions"])


def instance_views(
    session: Session, principal: Principal, instances: Sequence[SolutionInstance]
) -> list[InstanceOut]:
    external = tenancy.external_ids(session, (i.end_user_id for i in instances))
    found = {}
    views = []
    for instance in instances:
        if instance.solution_id not in found:
            found[instance.solution_id] = solutions.solution_of(session, instance)
        solution = found[instance.solution_id]
        views.append(InstanceOut.of(instance, solution, external.get(instance.end_user_id)))
    return views


@router.put("/v1/solutions/{key}", summary="Create or update a solution")
def apply_solution(
    key: str,
    bridge: BridgeDep,
    token: TokenDep,
    body: Annotated[
        dict[str, Any],
        Body(
            description="The solution spec: title, description, authSlots, configSlots "
            "(the same document as a YAML file for `authbridge solutions apply`; `key` may be "
            "left out)",
            openapi_examples={"typeform-to-sheets": {"value": SPEC_EXAMPLE}},
        ),
    ],
) -> SolutionApplied:
    """Slots are matched by `externalId`; instances keep the values of slots that remain."""
    if body.get("key", key) != key:
        raise errors.InvalidInput("key: the body's key differs from the URL's", field="key")
    spec = solutions.parse_solution_spec({**body, "key": key})
    with transaction(bridge, token, master=True) as (session, principal):
        applied = solutions.apply_solution_changes(bridge, session, principal, spec)
        return SolutionApplied(
            solution=SolutionOut.of(applied.solution, master=True),
            created=applied.created,
            changes=applied.changes,
        )


@router.get("/v1/solutions", summary="List solutions")
def list_solutions(bridge: BridgeDep, token: TokenDep) -> list[SolutionOut]:
    with transaction(bridge, token) as (session, principal):
        found = solutions.list_solutions(bridge, session, principal)
        return [SolutionOut.of(solution, master=principal.is_master) for solution in found]


@router.get("/v1/solutions/{solution}", summary="Get a solution by id or key")
def get_solution(solution: str, bridge: BridgeDep, token: TokenDep) -> SolutionOut:
    with transaction(bridge, token) as (session, principal):
        found = solutions.get_solution(bridge, session, principal, solution)
        return SolutionOut.of(found, master=principal.is_master)


@router.delete("/v1/solutions/{solution}", status_code=204, summary="Delete a solution")
def delete_solution(solution: str, bridge: BridgeDep, token: TokenDep) -> Response:
    """Deletes its instances too."""
    with transaction(bridge, token, master=True) as (session, principal):
        solutions.delete_solution(bridge, session, principal, solution)
    return Response(status_code=204)


@router.post("/v1/solution-instances", status_code=201, summary="Create a solution instance")
def create_instance(body: InstanceCreate, bridge: BridgeDep, token: TokenDep) -> InstanceOut:
    """For `externalUserId` (master token) or the user token's own end user."""
    with transaction(bridge, token) as (session, principal):
        owner = solutions.end_user_id_for(session, principal, body.external_user_id)
        instance = solutions.create_instance(
            bridge,
            session,
            principal,
            solution_id=body.solution_id,
            end_user_id=owner,
            name=body.name,
            auth_values=auth_values_of(body.auth_values),
            config_values=config_values_of(body.config_values),
            enabled=body.enabled,
        )
        return instance_views(session, principal, [instance])[0]


@router.get("/v1/solution-instances", summary="List solution instances")
def list_instances(
    bridge: BridgeDep,
    token: TokenDep,
    external_user_id: Annotated[str | None, Query(max_length=255)] = None,
    solution: Annotated[str | None, Query(max_length=128, description="Id or key")] = None,
    auth_id: Annotated[
        str | None, Query(max_length=64, description="Instances using this authentication")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> PageOut[InstanceOut]:
    """Oldest first; a user token sees only its own end user's instances."""
    with transaction(bridge, token) as (session, principal):
        end_user_id = None
        if external_user_id is not None:
            end_user = tenancy.find_end_user(session, principal.environment_id, external_user_id)
            if end_user is None:
                return PageOut(items=[], next_cursor=None)
            end_user_id = end_user.id
        page = solutions.list_instances(
            bridge,
            session,
            principal,
            end_user_id=end_user_id,
            solution_id=solution,
            auth_id=auth_id,
            limit=limit,
            cursor=cursor,
        )
        items = instance_views(session, principal, page.items)
        return PageOut(items=items, next_cursor=page.next_cursor)


@router.get("/v1/solution-instances/{instance_id}", summary="Get a solution instance")
def get_instance(instance_id: str, bridge: BridgeDep, token: TokenDep) -> InstanceOut:
    with transaction(bridge, token) as (session, principal):
        instance = solutions.get_instance(bridge, session, principal, instance_id)
        return instance_views(session, principal, [instance])[0]


@router.patch("/v1/solution-instances/{instance_id}", summary="Change a solution instance")
def update_instance(
    instance_id: str, body: InstanceUpdate, bridge: BridgeDep, token: TokenDep
) -> InstanceOut:
    """Values are merged: `authId: null` clears an auth slot, `value: null` a config value
    (its default applies again). `enabled: true` needs a complete instance (409 lists what is
    missing)."""
    with transaction(bridge, token) as (session, principal):
        instance = solutions.update_instance(
            bridge,
            session,
            principal,
            instance_id,
            name=body.name,
            auth_values=None if body.auth_values is None else auth_values_of(body.auth_values),
            config_values=(
                None if body.config_values is None else config_values_of(body.config_values)
            ),
            enabled=body.enabled,
        )
        return instance_views(session, principal, [instance])[0]


@router.delete(
    "/v1/solution-instances/{instance_id}", status_code=204, summary="Delete a solution instance"
)
def delete_instance(instance_id: str, bridge: BridgeDep, token: TokenDep) -> Response:
    with transaction(bridge, token) as (session, principal):
        solutions.delete_instance(bridge, session, principal, instance_id)
    return Response(status_code=204)
