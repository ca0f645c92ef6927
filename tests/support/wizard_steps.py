"""Steps of the wizard tests: a two-slot solution, an authorization code, an instance's values."""

from __future__ import annotations

from typing import Any

from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from tests.support.api_calls import import_key
from tests.support.app import Api

HOST_ORIGIN = "http://host.example.test"


def two_slot_solution(api: Api, *, hidden_slot: bool = False) -> str:
    """A solution with two visible API-key auth slots (the second force-unique), a static one
    (an account of the host's shared with everyone), three visible config slots and a hidden
    one; with ``hidden_slot`` also a hidden auth slot the host must fill. Return its id."""
    shared = import_key(api, "host-shared")["id"]
    hidden = [
        {
            "externalId": "backstage",
            "title": "Hidden",
            "connector": "sandbox-apikey",
            "hidden": True,
        }
    ]
    spec = solutions.parse_solution_spec(
        {
            "key": "forms-to-sheets",
            "title": "Forms to Sheets",
            "authSlots": [
                {"externalId": "source", "title": "Forms", "connector": "sandbox-apikey"},
                {
                    "externalId": "target",
                    "title": "Sheets",
                    "connector": "sandbox-apikey",
                    "forceUnique": True,
                },
                {
                    "externalId": "shared",
                    "title": "Shared",
                    "connector": "sandbox-apikey",
                    "static": True,
                    "staticAuthId": shared,
                },
                *(hidden if hidden_slot else []),
            ],
            "configSlots": [
                {
                    "externalId": "sheet_name",
                    "title": "Sheet",
                    "schema": {"type": "string", "minLength": 1, "description": "Tab name"},
                    "default": "leads",
                },
                {
                    "externalId": "batch",
                    "title": "Batch size",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                {
                    "externalId": "mode",
                    "title": "Mode",
                    "schema": {"enum": ["append", "replace"]},
                    "default": "append",
                },
                {
                    "externalId": "secret_flag",
                    "schema": {"type": "boolean"},
                    "default": False,
                    "hidden": True,
                },
            ],
        }
    )
    with api.bridge.session() as session:
        master = Principal(environment_id=api.environment_id, actor="test")
        return solutions.apply_solution(api.bridge, session, master, spec).id


def mint_code(api: Api, user: str = "user-1", origin: str | None = HOST_ORIGIN) -> str:
    body: dict[str, Any] = {"external_user_id": user}
    if origin is not None:
        body["origin"] = origin
    response = api.call("POST", "/v1/authorization-codes", json=body)
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


def instance(api: Api, instance_id: str) -> dict[str, Any]:
    response = api.call("GET", f"/v1/solution-instances/{instance_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def auth_values_of(found: dict[str, Any]) -> dict[str, str]:
    return {item["externalId"]: item["authId"] for item in found["authValues"]}
