"""The scopes an OAuth account was granted, against those its wizard step asks for.

The end user answers the sandbox provider's real consent page over loopback HTTP, granting
fewer or more scopes than asked (as a provider with granular consent lets them).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from tests.support.app import Api
from tests.support.oauth_steps import query_of, start
from tests.support.sandbox_grants import CLIENT
from tests.support.wizard_steps import auth_values_of, instance, mint_code

ASKED = ["profile", "email"]


def oauth_solution(api: Api, **slot: Any) -> str:
    """One OAuth slot asking for ``ASKED``; ``slot`` adds settings to it."""
    response = api.call("PUT", "/v1/connector-configs/sandbox-oauth2", json=CLIENT)
    assert response.status_code in (200, 201), response.text
    spec = solutions.parse_solution_spec(
        {
            "key": "oauth-one",
            "title": "OAuth one",
            "authSlots": [
                {
                    "externalId": "account",
                    "title": "Sandbox",
                    "connector": "sandbox-oauth2",
                    "scopes": ASKED,
                }
                | slot
            ],
        }
    )
    with api.bridge.session() as session:
        master = Principal(environment_id=api.environment_id, actor="test")
        return solutions.apply_solution(api.bridge, session, master, spec).id


def browser() -> httpx.Client:
    return httpx.Client(timeout=10, follow_redirects=False)


def connect_granting(
    api: Api, client: httpx.Client, page: str, granted: str | None
) -> httpx.Response:
    """Click "Connect a new account" on the wizard ``page``, sign in at the sandbox granting
    ``granted`` (what was asked when ``None``), and come back: the wizard's answer."""
    started = client.post(page, data={"action": "connect", "step": "account"})
    assert started.status_code == 303, started.text
    authorize = start(client, started.headers["location"])
    asked = query_of(authorize)
    assert asked["scope"] == " ".join(ASKED)
    consent = client.get(authorize)
    assert consent.status_code == 200, consent.text
    endpoint = urlunsplit(urlsplit(authorize)._replace(query=""))
    answer = asked | {"decision": "approve"} | ({"scope": granted} if granted else {})
    approved = client.post(endpoint, data=answer)
    assert approved.status_code == 303, approved.text
    callback = client.get(approved.headers["location"])
    assert callback.status_code == 303, callback.text
    back = callback.headers["location"]
    assert back.startswith(api.url + "/external/return?")
    return client.get(back)


def granted_scopes(api: Api) -> list[list[str]]:
    listed = api.call("GET", "/v1/authentications").json()
    items = listed["items"] if isinstance(listed, dict) else listed
    return [item["scopes"] for item in items]


def test_an_account_granted_fewer_scopes_says_which_and_can_try_again(
    api: Api, sandbox_url: str
) -> None:
    solution_id = oauth_solution(api)
    code = mint_code(api)
    page = f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=account"
    with browser() as client:
        assert client.get(page).status_code == 200
        short = connect_granting(api, client, page, granted="profile")
        assert short.status_code == 422, short.text
        text = html.unescape(short.text)
        assert "without the permission(s) Sandbox needs: email" in text
        assert "choose one of the accounts listed" not in text
        assert "Choose your Sandbox account" in text  # the step itself, to try again
        retry = re.search(r'<form method="post" action="([^"]+)" class="connect">', short.text)
        assert retry, short.text
        assert granted_scopes(api) == [["profile"]]

        again = connect_granting(api, client, api.url + html.unescape(retry.group(1)), None)
        assert again.status_code == 303, again.text
        config = client.get(again.headers["location"])
        assert "Step 2 of 2" in config.text
        done = client.post(
            f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=config",
            data={"action": "finish", "step": "config"},
        )
        assert done.status_code == 200, done.text
        found = re.search(r'data-result="([^"]*)"', done.text)
        assert found, done.text
    created = instance(api, json.loads(html.unescape(found.group(1)))["solutionInstanceId"])
    assert created["enabled"] is True
    full = [item for item in granted_scopes(api) if item == ASKED]
    assert len(full) == 1
    assert auth_values_of(created)["account"]


def finish(api: Api, client: httpx.Client, solution_id: str, code: str) -> dict[str, Any]:
    done = client.post(
        f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=config",
        data={"action": "finish", "step": "config"},
    )
    assert done.status_code == 200, done.text
    found = re.search(r'data-result="([^"]*)"', done.text)
    assert found, done.text
    return instance(api, json.loads(html.unescape(found.group(1)))["solutionInstanceId"])


def test_an_account_granted_more_scopes_fills_the_slot_flagged(api: Api, sandbox_url: str) -> None:
    solution_id = oauth_solution(api)
    code = mint_code(api)
    page = f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=account"
    with browser() as client:
        wide = connect_granting(api, client, page, granted="profile email admin")
        assert wide.status_code == 303, wide.text
        created = finish(api, client, solution_id, code)
    [value] = created["authValues"]
    assert value["extraScopes"] == ["admin"]
    assert granted_scopes(api) == [["profile", "email", "admin"]]


def test_a_slot_that_refuses_wider_grants_says_which_and_can_try_again(
    api: Api, sandbox_url: str
) -> None:
    solution_id = oauth_solution(api, onExtraScopes="refuse")
    code = mint_code(api)
    page = f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=account"
    with browser() as client:
        wide = connect_granting(api, client, page, granted="profile email admin")
        assert wide.status_code == 422, wide.text
        assert "was granted more than Sandbox may use: admin" in html.unescape(wide.text)
        exact = connect_granting(api, client, page, granted=None)
        assert exact.status_code == 303, exact.text
        created = finish(api, client, solution_id, code)
    [value] = created["authValues"]
    assert value["extraScopes"] == []
