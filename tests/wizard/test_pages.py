"""The configuration wizard and edit links over real HTTP, on SQLite and PostgreSQL.

The end user's browser is an httpx client with a cookie jar and no token; redirects are
followed by hand so each hop can be checked.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from authbridge.storage.models import AuthorizationCode
from tests.support.api_calls import import_key, user_token
from tests.support.app import SANDBOX_KEY, Api
from tests.support.sandbox_grants import CLIENT
from tests.support.wizard_steps import (
    HOST_ORIGIN,
    auth_values_of,
    instance,
    mint_code,
    two_slot_solution,
)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
EXPIRED = "This link has expired or was already used"


def oauth_solution(api: Api) -> str:
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
                    "scopes": ["profile", "email"],
                }
            ],
        }
    )
    with api.bridge.session() as session:
        master = Principal(environment_id=api.environment_id, actor="test")
        return solutions.apply_solution(api.bridge, session, master, spec).id


def browser() -> httpx.Client:
    return httpx.Client(timeout=10, follow_redirects=False)


def form_of(page: str) -> str:
    """The action of the page's first form (HTML-unescaped)."""
    found = re.search(r'<form method="post" action="([^"]+)"', page)
    assert found, page
    return html.unescape(found.group(1))


def result_of(response: httpx.Response) -> tuple[dict[str, Any], str]:
    assert response.status_code == 200, response.text
    found = re.search(r'data-result="([^"]*)" data-origin="([^"]*)"', response.text)
    assert found, response.text
    return json.loads(html.unescape(found.group(1))), html.unescape(found.group(2))


def config_values_of(found: dict[str, Any]) -> dict[str, Any]:
    return {item["externalId"]: item["value"] for item in found["configValues"]}


def connect_through_page(
    client: httpx.Client, api: Api, response: httpx.Response
) -> httpx.Response:
    """Follow "Connect a new account": fill the connect page, come back through the return."""
    assert response.status_code == 303, response.text
    connect_url = response.headers["location"]
    assert connect_url.startswith(api.url + "/connect/")
    page = client.get(connect_url)
    assert page.status_code == 200
    assert "Use a connected account" not in page.text  # the wizard offers those itself
    stored = client.post(connect_url, data={"action": "connect", "field.api_key": SANDBOX_KEY})
    assert stored.status_code == 303, stored.text
    back = stored.headers["location"]
    assert back.startswith(api.url + "/external/return?")
    return client.get(back)


def run_wizard(
    api: Api, client: httpx.Client, url: str, picked: str, config: dict[str, str]
) -> httpx.Response:
    """Pick ``picked`` for the first slot, connect a new account for the second, submit."""
    first = client.get(url)
    assert first.status_code == 200, first.text
    assert "Step 1 of 3" in first.text
    assert picked in first.text
    assert "Hidden" not in first.text
    assert "Shared" not in first.text
    chosen = client.post(
        api.url + form_of(first.text),
        data={"action": "pick", "step": "source", "authentication_id": picked},
    )
    assert chosen.status_code == 303, chosen.text
    second = client.get(chosen.headers["location"])
    assert "Step 2 of 3" in second.text
    assert picked not in second.text  # force-unique: an account used elsewhere is not offered
    action = api.url + re.findall(r'<form method="post" action="([^"]+)"', second.text)[-1]
    started = client.post(html.unescape(action), data={"action": "connect", "step": "target"})
    back = connect_through_page(client, api, started)
    assert back.status_code == 303, back.text
    config_page = client.get(back.headers["location"])
    assert "Step 3 of 3" in config_page.text
    assert "secret_flag" not in config_page.text
    return client.post(
        api.url + form_of(config_page.text), data={"action": "finish", "step": "config"} | config
    )


def test_the_wizard_creates_and_enables_an_instance_and_uses_up_the_code(api: Api) -> None:
    existing = import_key(api)["id"]
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/default/{solution_id}?code={code}"
    with browser() as client:
        done = run_wizard(
            api,
            client,
            url,
            existing,
            {"config.sheet_name": "leads", "config.batch": "25", "config.mode": '"replace"'},
        )
        result, origin = result_of(done)
        assert origin == HOST_ORIGIN
        assert '<script src="/static/connect-result.js"></script>' in done.text
        assert done.headers["content-security-policy"] == CSP

        created = instance(api, result["solutionInstanceId"])
        assert created["enabled"] is True
        values = auth_values_of(created)
        assert values["source"] == existing
        assert values["target"] != existing
        assert set(values) == {"source", "target", "shared"}
        assert config_values_of(created) == {
            "sheet_name": "leads",
            "batch": 25,
            "mode": "replace",
            "secret_flag": False,
        }

        # The finished flow cannot be replayed, and the link is used up.
        again = client.get(url)
        assert again.status_code == 404
        assert EXPIRED in again.text
        replay = client.post(
            f"{url}&step=config",
            data={"action": "finish", "step": "config", "config.batch": "25"},
        )
        assert replay.status_code == 404
    listed = api.call("GET", "/v1/solution-instances").json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert len(items) == 1


def test_config_values_are_checked_field_by_field_on_the_server(api: Api) -> None:
    existing = import_key(api)["id"]
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/default/{solution_id}?code={code}"
    with browser() as client:
        refused = run_wizard(
            api,
            client,
            url,
            existing,
            {"config.sheet_name": "", "config.batch": "lots", "config.mode": '"truncate"'},
        )
        assert refused.status_code == 422
        page = refused.text
        assert "enter a whole number" in page
        assert "should be non-empty" in page or "is too short" in page
        assert "choose one of the options" in page
        assert 'aria-invalid="true"' in page
        assert 'value="lots"' in page  # what was typed is shown again
        too_big = client.post(
            api.url + form_of(page),
            data={
                "action": "finish",
                "step": "config",
                "config.sheet_name": "x",
                "config.batch": "500",
                "config.mode": '"append"',
            },
        )
        assert too_big.status_code == 422
        assert "500 is greater than the maximum of 100" in too_big.text
        # Still usable: the code is used up only by the finished flow.
        done = client.post(
            api.url + form_of(page),
            data={
                "action": "finish",
                "step": "config",
                "config.sheet_name": "x",
                "config.batch": "5",
                "config.mode": '"append"',
            },
        )
        result, _ = result_of(done)
        assert instance(api, result["solutionInstanceId"])["enabled"] is True


def test_an_expired_code_opens_nothing(api: Api) -> None:
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    with api.bridge.session() as session:
        record = session.query(AuthorizationCode).one()
        assert record.code_hash != code
        assert code not in json.dumps(record.progress)
        record.expires_at = record.expires_at - timedelta(minutes=11)
    response = httpx.get(f"{api.url}/external/solutions/default/{solution_id}?code={code}")
    assert response.status_code == 404
    assert EXPIRED in response.text
    assert response.headers["content-security-policy"] == CSP


def test_unknown_codes_themes_and_other_users_objects_are_not_found(api: Api) -> None:
    solution_id = two_slot_solution(api)
    others = import_key(api, "user-2")["id"]
    code = mint_code(api)
    base = f"{api.url}/external"
    unknown = httpx.get(f"{base}/solutions/default/{solution_id}?code=nope")
    assert unknown.status_code == 404
    assert EXPIRED in unknown.text
    theme = httpx.get(f"{base}/solutions/acme/{solution_id}?code={code}")
    assert theme.status_code == 404
    assert "There is no theme &#39;acme&#39;" in theme.text
    edit = httpx.get(f"{base}/auth/edit/default/{others}?code={code}")
    assert edit.status_code == 404
    assert "not found" in edit.text
    # user-2's instance, opened with user-1's code
    with api.bridge.session() as session:
        master = Principal(environment_id=api.environment_id, actor="test")
        theirs = solutions.create_instance(
            api.bridge,
            session,
            master,
            solution_id=solution_id,
            end_user_id=solutions.end_user_id_for(session, master, "user-2"),
            name="theirs",
            auth_values={"source": others},
        ).id
    foreign = httpx.get(f"{base}/solutions/default/instances/{theirs}?code={code}")
    assert foreign.status_code == 404
    assert f"solution instance &#39;{theirs}&#39; not found" in foreign.text


def test_a_post_from_another_origin_is_refused(api: Api) -> None:
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=source"
    refused = httpx.post(
        url, data={"action": "connect", "step": "source"}, headers={"Origin": HOST_ORIGIN}
    )
    assert refused.status_code == 403
    assert refused.headers["content-security-policy"] == CSP
    with api.bridge.session() as session:
        assert session.query(AuthorizationCode).one().progress == {}


def test_forms_beyond_the_limits_are_a_413_page_naming_the_limit(api: Api) -> None:
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=config"
    finish = {"action": "finish", "step": "config"}
    cases = [
        (finish | {"config.sheet_name": "x" * (100 * 1024)}, "at most 64 KiB"),
        (finish | {f"config.slot{number}": "x" for number in range(1001)}, "at most 1,000 fields"),
        (finish | {"config.sheet_name": "x" * (2 * 1024 * 1024)}, "larger than 256 KiB"),
    ]
    for data, limit in cases:
        response = httpx.post(url, data=data, timeout=10)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == CSP
        assert "<title>Too large</title>" in response.text
        assert limit in response.text
    with api.bridge.session() as session:
        assert session.query(AuthorizationCode).one().progress == {}
    assert httpx.get(url, timeout=10).status_code == 200  # the code is still usable


def test_the_scopes_come_from_the_slot_never_from_the_browser(api: Api) -> None:
    solution_id = oauth_solution(api)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/default/{solution_id}?code={code}"
    with browser() as client:
        page = client.get(url)
        assert page.status_code == 200
        started = client.post(
            api.url + form_of(page.text),
            data={"action": "connect", "step": "account", "scopes": "admin", "scope": "admin"},
        )
        assert started.status_code == 303
        connect_url = started.headers["location"]
        button = client.post(connect_url + "/oauth", data={"scope": "admin"})
        assert button.status_code == 303
        authorize = urlsplit(button.headers["location"])
        assert parse_qs(authorize.query)["scope"] == ["profile email"]


def test_codes_are_minted_by_the_host_or_by_a_user_for_itself(api: Api) -> None:
    assert mint_code(api, "new-user")
    token = user_token(api, "user-1")
    own = api.call("POST", "/v1/authorization-codes", token=token, json={})
    assert own.status_code == 201, own.text
    other = api.call(
        "POST", "/v1/authorization-codes", token=token, json={"external_user_id": "user-2"}
    )
    assert other.status_code == 404
    missing = api.call("POST", "/v1/authorization-codes", json={})
    assert missing.status_code == 422
    bad_origin = api.call(
        "POST",
        "/v1/authorization-codes",
        json={"external_user_id": "user-1", "origin": "https://x.test/path"},
    )
    assert bad_origin.status_code == 422


def test_an_edit_link_reconnects_the_auth_in_place_and_is_used_up(api: Api) -> None:
    solution_id = two_slot_solution(api)
    auth = import_key(api)
    with api.bridge.session() as session:
        master = Principal(environment_id=api.environment_id, actor="test")
        used_by = solutions.create_instance(
            api.bridge,
            session,
            master,
            solution_id=solution_id,
            end_user_id=solutions.end_user_id_for(session, master, "user-1"),
            name="mine",
            auth_values={"source": auth["id"]},
        ).id
    code = mint_code(api)
    url = f"{api.url}/external/auth/edit/default/{auth['id']}?code={code}&skipTitleField=true"
    with browser() as client:
        opened = client.get(url)
        assert opened.status_code == 303, opened.text
        connect_url = opened.headers["location"]
        page = client.get(connect_url)
        assert f"<h1>Reconnect {auth['name']}</h1>" in page.text
        assert 'id="account-name"' not in page.text  # skipTitleField
        stored = client.post(
            connect_url, data={"action": "connect", "field.api_key": SANDBOX_KEY, "name": "Evil"}
        )
        assert stored.status_code == 303, stored.text
        done = client.get(stored.headers["location"])
        result, origin = result_of(done)
        assert result == {"authId": auth["id"], "connector": "sandbox-apikey"}
        assert origin == HOST_ORIGIN
        assert not any(name.startswith("ab_wizard_") for name in client.cookies)
        again = client.get(url)
        assert again.status_code == 404
        assert EXPIRED in again.text
    after = api.call("GET", f"/v1/authentications/{auth['id']}").json()
    assert after["name"] == auth["name"]
    assert after["updated_at"] != auth["updated_at"]
    assert auth_values_of(instance(api, used_by))["source"] == auth["id"]


def test_an_oauth_edit_link_with_skip_auth_settings_goes_straight_to_consent(
    api: Api, sandbox_url: str
) -> None:
    assert api.call("PUT", "/v1/connector-configs/sandbox-oauth2", json=CLIENT).is_success
    body = {
        "external_user_id": "user-1",
        "connector": "sandbox-oauth2",
        "tokens": {"access_token": "at-1", "scope": "profile email"},
        "scopes": ["profile", "email"],
        "validate": False,
    }
    auth = api.call("POST", "/v1/authentications", json=body).json()
    code = mint_code(api)
    url = f"{api.url}/external/auth/edit/default/{auth['id']}?code={code}&skipAuthSettings=true"
    with browser() as client:
        opened = client.get(url)
        assert opened.status_code == 303
        consent = client.get(opened.headers["location"])
        assert consent.status_code == 303
        location = urlsplit(consent.headers["location"])
        assert f"{location.scheme}://{location.netloc}" == sandbox_url
        assert location.path == "/oauth2/authorize"
        assert parse_qs(location.query)["scope"] == ["profile email"]


def test_a_return_without_the_links_cookie_or_for_another_session_is_refused(api: Api) -> None:
    existing = import_key(api)["id"]
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/default/{solution_id}?code={code}&step=source"
    with browser() as client:
        started = client.post(url, data={"action": "connect", "step": "source"})
        assert started.status_code == 303
        session_id = None
        for name in client.cookies:
            assert name.startswith("ab_wizard_")
        with api.bridge.session() as session:
            session_id = (
                session.query(AuthorizationCode).one().progress["pending"]["connect_session"]
            )
        # The connect session was not finished: its account cannot be claimed.
        early = client.get(
            f"{api.url}/external/return", params={"connect_session": session_id, "auth": existing}
        )
        assert early.status_code == 404
        assert "not connected for this link" in early.text
    stranger = httpx.get(
        f"{api.url}/external/return", params={"connect_session": session_id, "auth": existing}
    )
    assert stranger.status_code == 404
    assert EXPIRED in stranger.text


def test_hidden_slots_never_appear_and_an_unfilled_one_leaves_the_instance_disabled(
    api: Api,
) -> None:
    existing = import_key(api)["id"]
    solution_id = two_slot_solution(api, hidden_slot=True)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/default/{solution_id}?code={code}"
    with browser() as client:
        done = run_wizard(
            api,
            client,
            url,
            existing,
            {"config.sheet_name": "a", "config.batch": "1", "config.mode": '"append"'},
        )
    result, _ = result_of(done)
    created = instance(api, result["solutionInstanceId"])
    assert created["enabled"] is False
    assert created["missing"] == ["auth slot 'backstage' has no authentication"]


def test_nul_in_the_url_is_a_not_found_page(api: Api) -> None:
    base = f"{api.url}/external"
    for path in (
        "/solutions/default/x%00y?code=a",
        "/solutions/default/instances/x%00y?code=a",
        "/auth/edit/default/x%00y?code=a",
        "/return?connect_session=a%00&auth=b",
        "/themes/a%00b.css",
    ):
        response = httpx.get(base + path, timeout=10)
        assert response.status_code == 404, (path, response.text)
