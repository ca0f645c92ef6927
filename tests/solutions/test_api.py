"""Solutions and solution instances over REST, on SQLite and PostgreSQL: every rule of issue 6."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from authbridge.storage.models import AuthStatus
from authbridge.tenancy.repository import AuditRepository, EndUserRepository
from tests.support.api_calls import assert_problem, import_key, user_token
from tests.support.app import SANDBOX_KEY, Api
from tests.support.rows import set_status

KEY_SLOT = "external_key_authentication"
OAUTH_SLOT = "external_oauth_authentication"

SPEC: dict[str, Any] = {
    "title": "Forms to Sheets",
    "description": "A solution with two auth slots and three config slots",
    "authSlots": [
        {"externalId": KEY_SLOT, "title": "Key service", "connector": "sandbox-apikey"},
        {
            "externalId": OAUTH_SLOT,
            "title": "OAuth service",
            "connector": "sandbox-oauth2",
            "scopes": ["read", "write"],
        },
    ],
    "configSlots": [
        {
            "externalId": "external_spreadsheet_id",
            "title": "Spreadsheet",
            "schema": {"type": "string", "minLength": 1},
        },
        {
            "externalId": "external_rows",
            "title": "Rows",
            "schema": {
                "type": "object",
                "properties": {"limit": {"type": "integer", "minimum": 1}},
                "required": ["limit"],
            },
        },
        {
            "externalId": "external_sheet_name",
            "title": "Sheet",
            "schema": {"type": "string"},
            "default": "leads",
        },
    ],
}
CONFIG = [
    {"externalId": "external_spreadsheet_id", "value": "1miJOZQvaVdz"},
    {"externalId": "external_rows", "value": {"limit": 10}},
]


def put_solution(api: Api, key: str = "forms", spec: dict[str, Any] | None = None) -> Any:
    response = api.call("PUT", f"/v1/solutions/{key}", json=spec or SPEC)
    assert response.status_code == 200, response.text
    return response.json()


def import_oauth(api: Api, user: str, scopes: list[str]) -> dict[str, Any]:
    body = {
        "connector": "sandbox-oauth2",
        "external_user_id": user,
        "tokens": {"access_token": f"at-{user}-{'-'.join(scopes)}"},
        "scopes": scopes,
        "validate": False,
    }
    response = api.call("POST", "/v1/authentications", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def create(api: Api, token: str | None = None, **body: Any) -> httpx.Response:
    document = {"solutionId": "forms", "externalUserId": "user-1", "name": "Mine"} | body
    return api.call("POST", "/v1/solution-instances", token=token, json=document)


def created(api: Api, token: str | None = None, **body: Any) -> Any:
    response = create(api, token, **body)
    assert response.status_code == 201, response.text
    return response.json()


def patch(api: Api, instance_id: str, token: str | None = None, **body: Any) -> httpx.Response:
    return api.call("PATCH", f"/v1/solution-instances/{instance_id}", token=token, json=body)


def auth_values(*pairs: tuple[str, str | None]) -> list[dict[str, Any]]:
    return [{"externalId": external_id, "authId": auth_id} for external_id, auth_id in pairs]


def values_of(instance: dict[str, Any]) -> dict[str, str]:
    return {value["externalId"]: value["authId"] for value in instance["authValues"]}


def config_of(instance: dict[str, Any]) -> dict[str, Any]:
    return {value["externalId"]: value["value"] for value in instance["configValues"]}


def complete_instance(api: Api, user: str = "user-1", **body: Any) -> Any:
    key = import_key(api, user)
    oauth = import_oauth(api, user, ["read", "write"])
    values = auth_values((KEY_SLOT, key["id"]), (OAUTH_SLOT, oauth["id"]))
    body = {"externalUserId": user, "authValues": values, "configValues": CONFIG} | body
    return created(api, **body), key, oauth


# -- solutions ----------------------------------------------------------------------------------


def test_put_creates_a_solution_then_updates_it_in_place(api: Api) -> None:
    first = put_solution(api)
    assert first["created"] is True
    solution = first["solution"]
    assert [slot["externalId"] for slot in solution["authSlots"]] == [KEY_SLOT, OAUTH_SLOT]
    assert solution["authSlots"][0]["version"] == "1"  # the newest, pinned when applied
    assert solution["configSlots"][2]["default"] == "leads"

    spec = copy.deepcopy(SPEC) | {"title": "Forms to Sheets v2"}
    second = put_solution(api, spec=spec)
    assert second["created"] is False
    assert second["changes"] == ["title"]
    assert second["solution"]["id"] == solution["id"]
    unchanged = put_solution(api, spec=spec)
    assert unchanged["changes"] == []

    by_key = api.call("GET", "/v1/solutions/forms").json()
    by_id = api.call("GET", f"/v1/solutions/{solution['id']}").json()
    assert by_key == by_id
    assert by_key["title"] == "Forms to Sheets v2"
    listed = api.call("GET", "/v1/solutions").json()
    assert [item["key"] for item in listed] == ["forms"]


def test_workflows_are_declared_with_trigger_url_templates(api: Api) -> None:
    workflows = [{"key": "sync", "triggerUrl": "https://{{instance_id}}.hooks.example.test"}]
    applied = put_solution(api, spec=SPEC | {"workflows": workflows})
    assert applied["solution"]["workflows"] == [
        {"key": "sync", "title": "sync", "triggerUrl": "https://{{instance_id}}.hooks.example.test"}
    ]
    moved = [{"key": "sync", "triggerUrl": "https://hooks.example.test/{{instance_id}}"}]
    assert put_solution(api, spec=SPEC | {"workflows": moved})["changes"] == ["workflows"]
    instance = created(api)
    assert instance["workflows"][0]["triggerUrl"] == (
        f"https://hooks.example.test/{instance['id']}"
    )
    for wrong, field, reason in (
        ("https://x.test/{{api_key}}", "workflows[0].triggerUrl", "unknown placeholder 'api_key'"),
        ("ftp://x.test/{{instance_id}}", "workflows[0].triggerUrl", "not an absolute http(s) URL"),
        ("https://{{workflow}}.x.test", "workflows[0].triggerUrl", "DNS label"),
    ):
        bad = [{"key": "a.b", "triggerUrl": wrong}]
        response = api.call("PUT", "/v1/solutions/forms", json=SPEC | {"workflows": bad})
        problem = assert_problem(response, 422, "invalid_input")
        assert field in problem["detail"], problem
        assert reason in problem["detail"], problem
    twice = [{"key": "sync", "triggerUrl": "https://x.test"}] * 2
    response = api.call("PUT", "/v1/solutions/forms", json=SPEC | {"workflows": twice})
    assert "workflows[1].key" in assert_problem(response, 422, "invalid_input")["detail"]


def test_a_user_token_reads_solutions_but_cannot_write_them(api: Api) -> None:
    put_solution(api)
    token = user_token(api, "user-1")
    assert api.call("GET", "/v1/solutions/forms", token=token).status_code == 200
    refused = api.call("PUT", "/v1/solutions/forms", token=token, json=SPEC)
    assert_problem(refused, 403, "forbidden")
    assert_problem(api.call("DELETE", "/v1/solutions/forms", token=token), 403, "forbidden")


def test_spec_problems_name_the_key_path(api: Api) -> None:
    def problem(spec: dict[str, Any], key: str = "forms") -> str:
        response = api.call("PUT", f"/v1/solutions/{key}", json=spec)
        detail: str = assert_problem(response, 422, "invalid_input")["detail"]
        return detail

    bad_id = copy.deepcopy(SPEC)
    bad_id["authSlots"][1]["externalId"] = "has space"
    assert problem(bad_id).startswith("authSlots[1].externalId: an external id is")
    unknown = copy.deepcopy(SPEC)
    unknown["authSlots"][0]["connector"] = "nowhere"
    assert "authSlots[0].connector: no connector named 'nowhere'" in problem(unknown)
    old = copy.deepcopy(SPEC)
    old["authSlots"][0]["version"] = 7
    assert "authSlots[0].version: connector 'sandbox-apikey' has no version 7" in problem(old)
    schema = copy.deepcopy(SPEC)
    schema["configSlots"][1]["schema"] = {"type": "integer", "minimum": "one"}
    assert "configSlots[1].schema: not a valid JSON Schema at minimum" in problem(schema)
    remote = copy.deepcopy(SPEC)
    remote["configSlots"][0]["schema"] = {"$ref": "https://example.com/schema.json"}
    assert "configSlots[0].schema: $ref 'https://example.com/schema.json'" in problem(remote)
    default = copy.deepcopy(SPEC)
    default["configSlots"][2]["default"] = 5
    assert "configSlots[2].default: does not match the schema: 5 is not of type" in problem(default)
    twice = copy.deepcopy(SPEC)
    twice["configSlots"][0]["externalId"] = KEY_SLOT
    assert f"configSlots[0].externalId: '{KEY_SLOT}' is already the external id" in problem(twice)
    typo = copy.deepcopy(SPEC) | {"authslots": []}
    assert "authslots: Extra inputs are not permitted" in problem(typo)
    static = copy.deepcopy(SPEC)
    static["authSlots"][0]["static"] = True
    assert "authSlots[0]: a static slot needs staticAuthId" in problem(static)
    assert "solution key" in problem(SPEC, key="Upper")
    deep = copy.deepcopy(SPEC)
    nested: Any = {}
    for _ in range(40):
        nested = [nested]
    deep["configSlots"][0]["schema"] = {"items": nested}
    assert "configSlots[0].schema.items[0]" in problem(deep)
    nul = copy.deepcopy(SPEC) | {"description": "a\x00b"}
    assert "description: text must not contain NUL characters" in problem(nul)
    assert api.call("GET", "/v1/solutions").json() == []


def test_deleting_a_solution_deletes_its_instances(api: Api) -> None:
    put_solution(api)
    instance = created(api)
    assert api.call("DELETE", "/v1/solutions/forms").status_code == 204
    assert_problem(api.call("GET", f"/v1/solution-instances/{instance['id']}"), 404, "not_found")
    assert_problem(api.call("GET", "/v1/solutions/forms"), 404, "not_found")


# -- external ids -------------------------------------------------------------------------------


def test_external_ids_are_case_sensitive(api: Api) -> None:
    put_solution(api)
    key = import_key(api)
    response = create(api, authValues=auth_values(("External_Key_Authentication", key["id"])))
    detail = assert_problem(response, 422, "invalid_input")["detail"]
    assert "'External_Key_Authentication' is not one of the auth slots" in detail
    assert f"'{KEY_SLOT}', '{OAUTH_SLOT}'" in detail
    assert f"did you mean '{KEY_SLOT}'? external ids are case-sensitive" in detail

    config = [{"externalId": "external_Sheet_Name", "value": "x"}]
    detail = assert_problem(create(api, configValues=config), 422)["detail"]
    assert "'external_Sheet_Name' is not one of the config slots" in detail
    assert "did you mean 'external_sheet_name'?" in detail

    unknown = create(api, authValues=auth_values(("external_nothing", key["id"])))
    assert "did you mean" not in assert_problem(unknown, 422)["detail"]
    assert api.call("GET", "/v1/solution-instances").json()["items"] == []


# -- which authentications fit a slot ------------------------------------------------------------


def test_another_users_auth_is_refused(api: Api) -> None:
    put_solution(api)
    theirs = import_key(api, "user-2")
    values = auth_values((KEY_SLOT, theirs["id"]))
    as_master = assert_problem(create(api, authValues=values), 422, "invalid_input")
    assert (
        f"authValues.{KEY_SLOT}: authentication '{theirs['id']}' belongs to another"
        in (as_master["detail"])
    )
    token = user_token(api, "user-1")
    as_user = create(api, token, externalUserId=None, authValues=values)
    assert theirs["id"] in assert_problem(as_user, 404, "not_found")["detail"]


def test_an_auth_of_another_connector_is_refused(api: Api) -> None:
    put_solution(api)
    oauth = import_oauth(api, "user-1", ["read", "write"])
    response = create(api, authValues=auth_values((KEY_SLOT, oauth["id"])))
    problem = assert_problem(response, 422, "invalid_input")
    assert problem["field"] == f"authValues.{KEY_SLOT}"
    assert (
        "is a 'sandbox-oauth2' authentication; the slot needs 'sandbox-apikey'"
        in (problem["detail"])
    )


def test_an_auth_without_the_slots_scopes_is_refused(api: Api) -> None:
    put_solution(api)
    narrow = import_oauth(api, "user-1", ["read"])
    response = create(api, authValues=auth_values((OAUTH_SLOT, narrow["id"])))
    detail = assert_problem(response, 422, "invalid_input")["detail"]
    assert "lacks the scope(s) write the slot needs" in detail
    wide = import_oauth(api, "user-1", ["write", "read", "admin"])
    instance = created(api, authValues=auth_values((OAUTH_SLOT, wide["id"])))
    assert values_of(instance) == {OAUTH_SLOT: wide["id"]}


def test_an_auth_granted_more_than_its_slot_is_flagged_or_refused_as_the_slot_says(
    api: Api,
) -> None:
    put_solution(api)
    wide = import_oauth(api, "user-1", ["write", "read", "admin"])
    exact = import_oauth(api, "user-1", ["read", "write"])
    instance = created(api, authValues=auth_values((OAUTH_SLOT, wide["id"])))
    assert instance["authValues"] == [
        {"externalId": OAUTH_SLOT, "authId": wide["id"], "extraScopes": ["admin"]}
    ]
    swapped = patch(api, instance["id"], authValues=auth_values((OAUTH_SLOT, exact["id"])))
    assert swapped.json()["authValues"][0]["extraScopes"] == []
    assert patch(api, instance["id"], authValues=auth_values((OAUTH_SLOT, wide["id"]))).is_success

    spec = copy.deepcopy(SPEC)
    spec["authSlots"][1]["onExtraScopes"] = "refuse"
    applied = put_solution(api, spec=spec)
    assert applied["changes"] == [
        f"change auth slot '{OAUTH_SLOT}'",
        "update the values of 1 instance(s)",
    ]
    assert applied["solution"]["authSlots"][1]["onExtraScopes"] == "refuse"
    after = api.call("GET", f"/v1/solution-instances/{instance['id']}").json()
    assert after["authValues"] == []  # the wider grant no longer fits
    refused = create(api, authValues=auth_values((OAUTH_SLOT, wide["id"])))
    detail = assert_problem(refused, 422, "invalid_input")["detail"]
    assert "was granted the scope(s) admin beyond the slot's, which refuses wider grants" in detail
    assert created(api, authValues=auth_values((OAUTH_SLOT, exact["id"])))["authValues"]

    spec["authSlots"][1]["onExtraScopes"] = "ignore"
    bad = api.call("PUT", "/v1/solutions/forms", json=spec)
    problem = assert_problem(bad, 422, "invalid_input")
    assert "authSlots[1].onExtraScopes" in problem["detail"]


def test_an_auth_that_is_not_active_is_refused(api: Api) -> None:
    put_solution(api)
    key = import_key(api)
    with api.bridge.session() as session:
        repository = AuthenticationRepository(session, api.bridge.keyring)
        auth = repository.get(api.environment_id, key["id"], now=api.bridge.now())
        assert auth is not None
        set_status(session, auth, AuthStatus.INVALID, last_error="revoked")
    response = create(api, authValues=auth_values((KEY_SLOT, key["id"])))
    assert "is invalid; the end user must reconnect it" in assert_problem(response, 422)["detail"]


def test_a_force_unique_slot_refuses_a_used_auth_until_it_is_released(api: Api) -> None:
    spec = copy.deepcopy(SPEC)
    spec["authSlots"][0]["forceUnique"] = True
    put_solution(api, spec=spec)
    key = import_key(api)
    first = created(api, authValues=auth_values((KEY_SLOT, key["id"])))
    response = create(api, name="Second", authValues=auth_values((KEY_SLOT, key["id"])))
    detail = assert_problem(response, 409, "conflict")["detail"]
    assert f"authValues.{KEY_SLOT}: the slot is force-unique" in detail
    assert first["id"] in detail

    released = patch(api, first["id"], authValues=auth_values((KEY_SLOT, None)))
    assert released.status_code == 200, released.text
    assert values_of(released.json()) == {}
    second = created(api, name="Second", authValues=auth_values((KEY_SLOT, key["id"])))
    assert values_of(second) == {KEY_SLOT: key["id"]}
    # ... and the auth now held by a force-unique slot is not shared the other way either.
    other = {"title": "Other", "authSlots": [{"externalId": "k", "connector": "sandbox-apikey"}]}
    put_solution(api, "other", other)
    shared = create(api, solutionId="other", authValues=auth_values(("k", key["id"])))
    assert "is the force-unique authentication of slot" in assert_problem(shared, 409)["detail"]


def test_a_static_slot_fills_itself_and_cannot_be_overridden(api: Api) -> None:
    with api.bridge.session() as session:
        shared = AuthenticationRepository(session, api.bridge.keyring).create(
            environment_id=api.environment_id,
            end_user_id=None,
            connector_key="sandbox-apikey",
            connector_version="1",
            auth_type="api_key",
            name="Company account",
            credentials={"api_key": SANDBOX_KEY},
        )
    spec = copy.deepcopy(SPEC)
    spec["authSlots"][0] |= {"static": True, "staticAuthId": shared.id}
    solution = put_solution(api, spec=spec)["solution"]
    assert solution["authSlots"][0]["hidden"] is True
    assert solution["authSlots"][0]["staticAuthId"] == shared.id

    token = user_token(api, "user-1")
    instance = created(api, token, externalUserId=None)
    assert values_of(instance) == {KEY_SLOT: shared.id}
    own = import_key(api, "user-1")
    response = patch(api, instance["id"], token, authValues=auth_values((KEY_SLOT, own["id"])))
    detail = assert_problem(response, 422, "invalid_input")["detail"]
    assert f"authValues.{KEY_SLOT}: the slot is static" in detail
    cleared = patch(api, instance["id"], authValues=auth_values((KEY_SLOT, None)))
    assert_problem(cleared, 422, "invalid_input")
    seen_by_user = api.call("GET", "/v1/solutions/forms", token=token).json()
    assert seen_by_user["authSlots"][0]["staticAuthId"] is None


def test_a_static_auth_must_exist_and_fit_the_slot(api: Api) -> None:
    oauth = import_oauth(api, "company", ["read"])
    spec = copy.deepcopy(SPEC)
    spec["authSlots"][1] |= {"static": True, "staticAuthId": oauth["id"]}
    response = api.call("PUT", "/v1/solutions/forms", json=spec)
    problem = assert_problem(response, 422, "invalid_input")
    assert problem["field"] == "authSlots[1].staticAuthId"
    assert "lacks the scope(s) write" in problem["detail"]
    spec["authSlots"][1]["staticAuthId"] = "no-such-auth"
    missing = api.call("PUT", "/v1/solutions/forms", json=spec)
    assert "authentication 'no-such-auth' not found" in assert_problem(missing, 422)["detail"]


# -- config values and enabling -----------------------------------------------------------------


def test_config_values_are_checked_against_their_schema_naming_the_path(api: Api) -> None:
    put_solution(api)
    bad = [{"externalId": "external_rows", "value": {"limit": 0}}]
    problem = assert_problem(create(api, configValues=bad), 422, "invalid_input")
    assert problem["field"] == "configValues.external_rows"
    assert problem["detail"].startswith("configValues.external_rows.limit: 0 is less than")
    wrong_type = [{"externalId": "external_sheet_name", "value": 3}]
    detail = assert_problem(create(api, configValues=wrong_type), 422)["detail"]
    assert "configValues.external_sheet_name: 3 is not of type 'string'" in detail
    instance = created(api, configValues=CONFIG)
    assert config_of(instance) == {
        "external_spreadsheet_id": "1miJOZQvaVdz",
        "external_rows": {"limit": 10},
        "external_sheet_name": "leads",  # the default
    }


def test_enabling_is_refused_with_what_is_missing_then_accepted_at_once(api: Api) -> None:
    put_solution(api)
    instance = created(api, configValues=CONFIG[:1])
    assert instance["enabled"] is False
    assert instance["complete"] is False
    refused = patch(api, instance["id"], enabled=True)
    detail = assert_problem(refused, 409, "conflict")["detail"]
    assert f"auth slot '{KEY_SLOT}' has no authentication" in detail
    assert f"auth slot '{OAUTH_SLOT}' has no authentication" in detail
    assert "config slot 'external_rows' has no value" in detail
    assert "external_spreadsheet_id" not in detail
    assert "external_sheet_name" not in detail

    key = import_key(api)
    oauth = import_oauth(api, "user-1", ["read", "write"])
    filled = patch(
        api,
        instance["id"],
        authValues=auth_values((KEY_SLOT, key["id"]), (OAUTH_SLOT, oauth["id"])),
        configValues=CONFIG[1:],
    )
    assert filled.json()["complete"] is True
    enabled = patch(api, instance["id"], enabled=True)  # no waiting period
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["enabled"] is True
    fetched = api.call("GET", f"/v1/solution-instances/{instance['id']}").json()
    assert fetched["enabled"] is True
    assert fetched["missing"] == []

    # An enabled instance is not silently made incomplete ...
    cleared = patch(api, instance["id"], authValues=auth_values((KEY_SLOT, None)))
    assert f"auth slot '{KEY_SLOT}' has no authentication" in assert_problem(cleared, 409)["detail"]
    # ... unless it is disabled in the same request.
    both = patch(api, instance["id"], enabled=False, authValues=auth_values((KEY_SLOT, None)))
    assert both.status_code == 200, both.text
    assert both.json()["enabled"] is False


def test_an_instance_is_created_enabled_only_when_complete(api: Api) -> None:
    put_solution(api)
    incomplete = create(api, enabled=True, configValues=CONFIG)
    assert "has no authentication" in assert_problem(incomplete, 409, "conflict")["detail"]
    assert api.call("GET", "/v1/solution-instances").json()["items"] == []
    instance, _key, _oauth = complete_instance(api, enabled=True)
    assert instance["enabled"] is True
    assert instance["complete"] is True


# -- owners, listing, deleting ------------------------------------------------------------------


def test_a_user_token_sees_and_changes_only_its_own_instances(api: Api) -> None:
    put_solution(api)
    mine = created(api, externalUserId="user-1")
    theirs = created(api, externalUserId="user-2", name="Theirs")
    token = user_token(api, "user-1")
    listed = api.call("GET", "/v1/solution-instances", token=token).json()["items"]
    assert [item["id"] for item in listed] == [mine["id"]]
    filtered = api.call(
        "GET", "/v1/solution-instances", token=token, params={"external_user_id": "user-2"}
    )
    assert filtered.json()["items"] == []
    path = f"/v1/solution-instances/{theirs['id']}"
    assert_problem(api.call("GET", path, token=token), 404, "not_found")
    assert_problem(patch(api, theirs["id"], token, name="Stolen"), 404, "not_found")
    assert_problem(api.call("DELETE", path, token=token), 404, "not_found")
    for_other = create(api, token, externalUserId="user-2")
    assert_problem(for_other, 403, "forbidden")
    own = created(api, token, externalUserId=None, name="Made by the user")
    assert own["externalUserId"] == "user-1"
    assert api.call("DELETE", f"/v1/solution-instances/{own['id']}", token=token).status_code == 204
    master_view = api.call("GET", "/v1/solution-instances").json()["items"]
    assert {item["id"] for item in master_view} == {mine["id"], theirs["id"]}


def test_deleting_an_auth_removes_it_from_its_instances(api: Api) -> None:
    put_solution(api)
    instance, key, oauth = complete_instance(api, enabled=True)
    used = api.call("GET", "/v1/solution-instances", params={"auth_id": key["id"]}).json()
    assert [item["id"] for item in used["items"]] == [instance["id"]]

    assert api.call("DELETE", f"/v1/authentications/{key['id']}").status_code == 204
    after = api.call("GET", f"/v1/solution-instances/{instance['id']}").json()
    assert values_of(after) == {OAUTH_SLOT: oauth["id"]}
    assert after["enabled"] is True  # kept, but reported as incomplete
    assert after["complete"] is False
    assert after["missing"] == [f"auth slot '{KEY_SLOT}' has no authentication"]
    gone = api.call("GET", "/v1/solution-instances", params={"auth_id": key["id"]}).json()
    assert gone["items"] == []
    renamed = patch(api, instance["id"], name="Still editable")
    assert renamed.status_code == 200, renamed.text


def test_listing_filters_and_pages(api: Api) -> None:
    put_solution(api)
    put_solution(api, "other", {"title": "Other"})
    first = created(api, externalUserId="user-1", name="one")
    second = created(api, externalUserId="user-2", name="two")
    third = created(api, externalUserId="user-1", solutionId="other", name="three")

    def ids(**params: Any) -> list[str]:
        response = api.call("GET", "/v1/solution-instances", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids(external_user_id="user-1") == [first["id"], third["id"]]
    assert ids(solution="forms") == [first["id"], second["id"]]
    assert ids(solution="other") == [third["id"]]
    assert ids(external_user_id="nobody") == []
    page = api.call("GET", "/v1/solution-instances", params={"limit": 2}).json()
    assert [item["id"] for item in page["items"]] == [first["id"], second["id"]]
    rest = api.call(
        "GET", "/v1/solution-instances", params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [item["id"] for item in rest["items"]] == [third["id"]]
    assert rest["next_cursor"] is None
    bad = api.call("GET", "/v1/solution-instances", params={"cursor": "nonsense"})
    assert_problem(bad, 422, "invalid_input")
    unknown = api.call("GET", "/v1/solution-instances", params={"solution": "nothing"})
    assert_problem(unknown, 404, "not_found")


def test_bad_instance_bodies_are_problems(api: Api) -> None:
    put_solution(api)
    key = import_key(api)
    assert_problem(create(api, name=""), 422)
    assert_problem(create(api, unexpected=True), 422)
    twice = auth_values((KEY_SLOT, key["id"]), (KEY_SLOT, key["id"]))
    detail = assert_problem(create(api, authValues=twice), 422)["detail"]
    assert f"'{KEY_SLOT}' is given more than once" in detail
    assert_problem(create(api, solutionId="nothing"), 404, "not_found")
    assert_problem(create(api, externalUserId=None), 422, "invalid_input")
    nul = [{"externalId": "external_sheet_name", "value": "a\x00b"}]
    assert_problem(create(api, configValues=nul), 422)
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    nested = [{"externalId": "external_rows", "value": deep}]
    detail = assert_problem(create(api, configValues=nested), 422)["detail"]
    assert detail.startswith("configValues.0.value: ")
    assert detail.endswith("nested deeper than 32 levels")
    missing = api.call("PATCH", "/v1/solution-instances/nothing", json={"name": "x"})
    assert_problem(missing, 404, "not_found")


# -- applying a changed spec ---------------------------------------------------------------------


def test_applying_a_changed_spec_keeps_the_values_of_remaining_slots(api: Api) -> None:
    put_solution(api)
    instance, key, _oauth = complete_instance(
        api, configValues=[*CONFIG, {"externalId": "external_sheet_name", "value": "mine"}]
    )
    spec = copy.deepcopy(SPEC)
    spec["authSlots"] = [spec["authSlots"][0], {"externalId": "extra", "connector": "sandbox-pwd"}]
    spec["configSlots"] = [
        slot for slot in spec["configSlots"] if slot["externalId"] != "external_rows"
    ]
    spec["configSlots"][1]["default"] = "contacts"
    applied = put_solution(api, spec=spec)
    assert applied["changes"] == [
        "add auth slot 'extra'",
        f"remove auth slot '{OAUTH_SLOT}'",
        "remove config slot 'external_rows'",
        "change config slot 'external_sheet_name'",
        "update the values of 1 instance(s)",
    ]
    after = api.call("GET", f"/v1/solution-instances/{instance['id']}").json()
    assert values_of(after) == {KEY_SLOT: key["id"]}
    assert config_of(after) == {
        "external_spreadsheet_id": "1miJOZQvaVdz",
        "external_sheet_name": "mine",
    }
    assert after["missing"] == ["auth slot 'extra' has no authentication"]

    # Narrowing a slot drops an authentication that no longer fits it.
    spec["authSlots"][0]["connector"] = "sandbox-oauth2"
    put_solution(api, spec=spec)
    narrowed = api.call("GET", f"/v1/solution-instances/{instance['id']}").json()
    assert values_of(narrowed) == {}


def test_every_change_is_audited_without_values(api: Api) -> None:
    put_solution(api)
    instance, _key, _oauth = complete_instance(api)
    patch(api, instance["id"], enabled=True)
    api.call("DELETE", f"/v1/solution-instances/{instance['id']}")
    with api.bridge.session() as session:
        events = AuditRepository(session).list(api.environment_id, limit=200).items
    actions = [(event.action, event.detail) for event in events if "solution" in event.action]
    assert [action for action, _ in actions] == [
        "solution.created",
        "solution_instance.created",
        "solution_instance.updated",
        "solution_instance.deleted",
    ]
    created_detail = actions[1][1]
    assert created_detail["auth_slots"] == [KEY_SLOT, OAUTH_SLOT]
    assert "1miJOZQvaVdz" not in str([detail for _, detail in actions])


# -- what the wizard may offer -------------------------------------------------------------------


def test_eligible_auths_are_the_owners_fitting_unused_ones(api: Api) -> None:
    spec = copy.deepcopy(SPEC)
    spec["authSlots"][0]["forceUnique"] = True
    put_solution(api, spec=spec)
    used = import_key(api)
    free = import_key(api)
    import_key(api, "user-2")
    import_oauth(api, "user-1", ["read", "write"])
    instance = created(api, authValues=auth_values((KEY_SLOT, used["id"])))
    with api.bridge.session() as session:
        owner = EndUserRepository(session).get_by_external_id(api.environment_id, "user-1")
        assert owner is not None
        principal = Principal(environment_id=api.environment_id, actor="test")
        solution = solutions.get_solution(api.bridge, session, principal, "forms")
        slot = solution.auth_slots[0]
        fresh = solutions.eligible_auths(api.bridge, session, principal, None, slot, owner.id)
        assert [auth.id for auth in fresh] == [free["id"]]
        mine = solutions.get_instance(api.bridge, session, principal, instance["id"])
        again = solutions.eligible_auths(api.bridge, session, principal, mine, slot, owner.id)
        assert [auth.id for auth in again] == [used["id"], free["id"]]
        narrow = solution.auth_slots[1]
        assert solutions.eligible_auths(api.bridge, session, principal, None, narrow, owner.id)


def test_concurrent_instances_cannot_share_a_force_unique_auth(api: Api) -> None:
    spec = copy.deepcopy(SPEC)
    spec["authSlots"][0]["forceUnique"] = True
    put_solution(api, spec=spec)
    key = import_key(api)
    values = auth_values((KEY_SLOT, key["id"]))
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda n: create(api, name=f"n{n}", authValues=values).status_code, range(6))
        )
    assert sorted(statuses) == [201, 409, 409, 409, 409, 409]
    used = api.call("GET", "/v1/solution-instances", params={"auth_id": key["id"]}).json()
    assert len(used["items"]) == 1
