"""The connect pages (``/connect/{code}``) over real HTTP, on SQLite and PostgreSQL.

The end user's browser has no token: these requests carry none.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge.connectors.registry import Registry
from tests.support.app import SANDBOX_KEY, Api
from tests.support.connectors import echoing_connector
from tests.support.loopback import serve
from tests.support.providers import ECHOED_KEY, ErrorShapes, encoded_spellings
from tests.support.raw_http import connect, head, read_response

HOST_ORIGIN = "http://host.example.test"
WRONG_KEY = "sk_wrong_0123456789"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
EXPIRED = "This link has expired or was already used"


def open_session(
    api: Api, user: str = "user-1", connector: str = "sandbox-apikey", **extra: Any
) -> str:
    body = {"external_user_id": user, "connector": connector, "origin": HOST_ORIGIN} | extra
    response = api.call("POST", "/v1/connect/sessions", json=body)
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    assert url.startswith(api.url + "/connect/")
    return url


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def post(url: str, data: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.post(url, data=data, headers=headers, timeout=10)


def connect_form(key: str = SANDBOX_KEY, **extra: str) -> dict[str, str]:
    return {"action": "connect", "field.api_key": key} | extra


def import_key(api: Api, user: str = "user-1", **extra: Any) -> dict[str, Any]:
    body = {
        "connector": "sandbox-apikey",
        "external_user_id": user,
        "fields": {"api_key": SANDBOX_KEY},
    }
    response = api.call("POST", "/v1/authentications", json=body | extra)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def listed_ids(api: Api) -> list[str]:
    return [item["id"] for item in api.call("GET", "/v1/authentications").json()["items"]]


def success_of(response: httpx.Response) -> tuple[dict[str, Any], str]:
    """The result the success page hands to its script, and the origin it is addressed to."""
    assert response.status_code == 200, response.text
    found = re.search(r'data-result="([^"]*)" data-origin="([^"]*)"', response.text)
    assert found, response.text
    return json.loads(html.unescape(found.group(1))), html.unescape(found.group(2))


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("text/html")


def test_the_page_shows_the_form_with_sanitised_tooltips(api: Api) -> None:
    response = get(open_session(api))
    assert response.status_code == 200
    assert_security_headers(response)
    page = response.text
    assert "<title>Connect Sandbox API key</title>" in page
    assert re.search(r'<label for="field-api_key">API key <span class="required"', page)
    assert re.search(r'<input id="field-api_key" name="field.api_key" type="password"', page)
    assert '<select id="field-region" name="field.region" aria-describedby' not in page
    assert re.search(r'<select id="field-region" name="field.region">', page)  # optional
    assert '<option value="eu">eu</option>' in page
    assert '<option value="us">us</option>' in page
    assert "Starts with <b>sk_sandbox_</b>." in page  # the tooltip, as sanitised HTML
    assert "alert(1)" not in page
    assert "<script" not in page  # the form page runs no script at all
    assert 'id="account-name" name="name"' in page
    assert '<img src="https://static.example.test/connect.png" alt="Connect account">' in page
    assert "Use a connected account" not in page  # nothing to pick yet


def test_connecting_a_good_key_posts_the_result_and_uses_up_the_code(api: Api) -> None:
    url = open_session(api)
    response = post(url, connect_form(**{"field.region": "eu", "name": ""}))
    assert_security_headers(response)
    result, origin = success_of(response)
    assert origin == HOST_ORIGIN
    assert result["connector"] == "sandbox-apikey"
    assert listed_ids(api) == [result["authId"]]
    assert '<script src="/static/connect-result.js"></script>' in response.text
    assert "Connected. You can close this window." in response.text
    assert SANDBOX_KEY not in response.text
    created = api.call("GET", f"/v1/authentications/{result['authId']}").json()
    assert created["name"] == "sandbox@example.test"
    assert created["external_user_id"] == "user-1"
    credentials = api.call("GET", f"/v1/authentications/{result['authId']}/credentials").json()
    assert credentials["credentials"] == {"api_key": SANDBOX_KEY, "region": "eu"}

    again = get(url)
    assert again.status_code == 404
    assert EXPIRED in again.text
    assert_security_headers(again)
    second = post(url, connect_form())
    assert second.status_code == 404
    assert EXPIRED in second.text
    assert listed_ids(api) == [result["authId"]]


def test_a_chosen_name_names_the_account(api: Api) -> None:
    result, _ = success_of(post(open_session(api), connect_form(name="  Work  ")))
    assert api.call("GET", f"/v1/authentications/{result['authId']}").json()["name"] == "Work"


def test_a_rejected_key_shows_the_provider_message_and_keeps_the_code(api: Api) -> None:
    url = open_session(api)
    response = post(url, connect_form(WRONG_KEY, **{"field.region": "us", "name": "Mine"}))
    assert response.status_code == 422
    assert_security_headers(response)
    page = response.text
    assert re.search(
        r'<div class="error" role="alert">\s*<p><strong>Connecting account failed', page
    )
    assert "Invalid API key" in page
    assert WRONG_KEY not in page
    assert '<option value="us" selected>us</option>' in page  # what was typed is shown again
    assert 'name="name" type="text" value="Mine"' in page
    assert listed_ids(api) == []

    result, _ = success_of(post(url, connect_form()))
    assert listed_ids(api) == [result["authId"]]


def test_a_key_the_provider_echoes_encoded_is_redacted_on_the_page(
    api: Api, api_connectors: Path, tmp_path: Path
) -> None:
    key = ECHOED_KEY
    provider = ErrorShapes()
    with serve(provider.app) as base_url:
        folder = echoing_connector(tmp_path / "echo", base_url)
        api.bridge.registry = Registry.load([api_connectors, folder], include_catalog=False)
        response = post(open_session(api, connector="echo-encoded"), connect_form(key))

    assert response.status_code == 422
    [received] = provider.received
    assert received.headers["x-api-key"] == key
    page = html.unescape(response.text)
    assert "Refused: base64 [redacted]; unpadded [redacted]; base64url [redacted]; " in page
    for name, spelling in encoded_spellings(key).items():
        assert spelling not in page, name
    assert page.count("[redacted]") == len(encoded_spellings(key))
    assert listed_ids(api) == []


def test_invalid_input_names_the_field(api: Api) -> None:
    url = open_session(api)
    response = post(url, connect_form("", **{"field.region": "mars"}))
    assert response.status_code == 422
    assert "Connecting account failed" in response.text
    assert "&#39;API key&#39; is required" in response.text
    assert 'aria-invalid="true"' in response.text
    assert post(url, {"action": "dance"}).status_code == 400
    success_of(post(url, connect_form()))


def test_picking_an_existing_account(api: Api) -> None:
    mine = import_key(api, name="Work account")
    theirs = import_key(api, user="user-2")
    url = open_session(api)
    page = get(url).text
    assert "Use a connected account" in page
    assert f'name="authentication_id" value="{mine["id"]}"' in page
    assert "Work account" in page
    assert mine["created_at"][:10] in page
    assert theirs["id"] not in page

    refused = post(url, {"action": "pick", "authentication_id": theirs["id"]})
    assert refused.status_code == 422
    assert "choose one of the accounts listed" in refused.text

    result, origin = success_of(post(url, {"action": "pick", "authentication_id": mine["id"]}))
    assert result == {"authId": mine["id"], "connector": "sandbox-apikey"}
    assert origin == HOST_ORIGIN
    assert sorted(listed_ids(api)) == sorted([mine["id"], theirs["id"]])
    assert EXPIRED in post(url, {"action": "pick", "authentication_id": mine["id"]}).text


def test_editing_reconnects_the_account_in_place(api: Api) -> None:
    created = import_key(api, name="Work account", fields={"api_key": SANDBOX_KEY, "region": "us"})
    url = open_session(api, authentication_id=created["id"])
    page = get(url).text
    assert "<title>Reconnect Work account</title>" in page
    assert "Use a connected account" not in page
    assert SANDBOX_KEY not in page  # never a secret
    assert '<option value="us" selected>us</option>' in page
    assert 'value="Work account"' in page
    assert 'alt="Reconnect account"' in page

    new_key = "sk_sandbox_rotated"
    result, _ = success_of(post(url, connect_form(new_key, name="Work account")))
    assert result == {"authId": created["id"], "connector": "sandbox-apikey"}
    assert listed_ids(api) == [created["id"]]
    credentials = api.call("GET", f"/v1/authentications/{created['id']}/credentials").json()
    assert credentials["credentials"]["api_key"] == new_key


def test_a_post_from_another_origin_is_refused(api: Api) -> None:
    url = open_session(api)
    refused = post(url, connect_form(), Origin="http://evil.example.test")
    assert refused.status_code == 403
    assert_security_headers(refused)
    assert post(url, connect_form(), Origin="null").status_code == 403
    assert listed_ids(api) == []
    assert get(url).status_code == 200  # the code is still usable
    success_of(post(url, connect_form(), Origin=api.url))


def test_forms_beyond_the_limits_are_a_413_page_naming_the_limit(api: Api) -> None:
    url = open_session(api)
    cases = [
        (connect_form("x" * (2 * 1024 * 1024)), "larger than 256 KiB"),  # the whole form
        (connect_form("x" * (100 * 1024)), "at most 64 KiB"),  # one field
        ({f"field.f{number}": "x" for number in range(1001)}, "at most 1,000 fields"),
    ]
    for data, limit in cases:
        response = post(url, data)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert "<title>Too large</title>" in response.text
        assert limit in response.text
        assert_security_headers(response)
    assert listed_ids(api) == []
    success_of(post(url, connect_form()))  # the code is still usable


def test_a_form_announced_over_the_limit_is_answered_before_it_is_sent(api: Api) -> None:
    path = open_session(api).removeprefix(api.url)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(10 * 1024 * 1024),
    }
    with connect(api.url) as sock:
        sock.sendall(head("POST", path, headers))
        answer = read_response(sock, timeout=5)  # the 10 MB are never sent
    assert answer.status == 413
    assert "<title>Too large</title>" in answer.text
    assert "256 KiB" in answer.text


def test_an_unknown_code_shows_the_expired_page(api: Api) -> None:
    for response in (
        get(api.url + "/connect/nope"),
        post(api.url + "/connect/nope", connect_form()),
    ):
        assert response.status_code == 404
        assert EXPIRED in response.text
        assert "Traceback" not in response.text
        assert_security_headers(response)


def test_skip_title_field_hides_the_name_and_names_automatically(api: Api) -> None:
    url = open_session(api, skip_title_field=True)
    page = get(url).text
    assert 'name="name"' not in page
    result, _ = success_of(post(url, connect_form(name="Ignored")))
    assert api.call("GET", f"/v1/authentications/{result['authId']}").json()["name"] == (
        "sandbox@example.test"
    )


def test_a_password_connector_shows_its_default_fields(api: Api) -> None:
    url = open_session(api, connector="sandbox-pwd")
    page = get(url).text
    assert 'name="field.username" type="text"' in page
    assert 'name="field.password" type="password"' in page
    assert '<button type="submit" class="primary">Connect</button>' in page
    result, _ = success_of(
        post(url, {"action": "connect", "field.username": "ada", "field.password": "sandbox"})
    )
    assert result["connector"] == "sandbox-pwd"


def test_a_session_without_origin_posts_to_nobody(api: Api) -> None:
    body = {"external_user_id": "user-1", "connector": "sandbox-apikey"}
    url = api.call("POST", "/v1/connect/sessions", json=body).json()["url"]
    result, origin = success_of(post(url, connect_form()))
    assert origin == ""
    assert listed_ids(api) == [result["authId"]]


def test_static_files_have_their_content_types(api: Api) -> None:
    for name, kind in (
        ("authbridge.js", "text/javascript"),
        ("connect-result.js", "text/javascript"),
        ("connect.css", "text/css"),
    ):
        response = get(f"{api.url}/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "AuthBridge" in get(f"{api.url}/static/authbridge.js").text


def test_a_connector_without_credentials_shows_only_a_connect_button(
    api: Api, api_connectors: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "connectors" / "acme" / "status"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text("type: none\ndefinition: {}\n")
    (folder / "manifest.yaml").write_text('key: acme-status\nlabel: Acme status\nversion: "1"\n')
    api.bridge.registry = Registry.load(
        [api_connectors, tmp_path / "connectors"], include_catalog=False
    )
    url = open_session(api, connector="acme-status")
    page = get(url).text
    assert re.findall(r"<(?:input|select|textarea|button)\b[^>]*>", page) == [
        '<input type="hidden" name="action" value="connect">',
        '<button type="submit" class="primary">',
    ]
    result, _ = success_of(post(url, {"action": "connect"}))
    created = api.call("GET", f"/v1/authentications/{result['authId']}").json()
    assert created["name"] == "Acme status"


def test_a_session_with_delete_after_schedules_the_account_s_deletion(api: Api) -> None:
    started = datetime.now(UTC)
    url = open_session(api, delete_after_seconds=3600)
    result, _ = success_of(post(url, connect_form()))
    stored = api.call("GET", f"/v1/authentications/{result['authId']}").json()
    delete_at = datetime.fromisoformat(stored["delete_at"])
    assert started + timedelta(seconds=3590) < delete_at < datetime.now(UTC) + timedelta(hours=1)
    # a reconnect through a session with its own delay schedules it again
    again = open_session(api, authentication_id=result["authId"], delete_after_seconds=60)
    success_of(post(again, connect_form()))
    stored = api.call("GET", f"/v1/authentications/{result['authId']}").json()
    assert datetime.fromisoformat(stored["delete_at"]) < datetime.now(UTC) + timedelta(minutes=2)
    refused = api.call(
        "POST",
        "/v1/connect/sessions",
        json={"external_user_id": "u", "connector": "sandbox-apikey", "delete_after_seconds": 0},
    )
    assert refused.status_code == 422, refused.text


def test_a_definition_failing_on_the_page_names_no_server_file(
    api: Api, api_connectors: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "connectors" / "acme" / "fragile"
    folder.mkdir(parents=True)
    (folder / "auth.py").write_text(
        "type = 'oauth2'\n\n\ndef definition(context):\n"
        "    if context.client_id:\n"
        "        raise RuntimeError('no tenant configured')\n"
        "    return {'auth_url': 'https://a.example/authorize',\n"
        "            'request_access_token': 'https://a.example/token'}\n"
    )
    api.bridge.registry = Registry.load(
        [api_connectors, tmp_path / "connectors"], include_catalog=False
    )
    configured = api.call("PUT", "/v1/connector-configs/fragile", json={"client_id": "c"})
    assert configured.status_code in (200, 201), configured.text
    url = open_session(api, connector="fragile")
    page = get(url)
    assert page.status_code == 422, page.text
    assert "not set up correctly on the server" in page.text
    assert str(tmp_path) not in page.text
    assert "no tenant configured" not in page.text
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("no tenant configured" in line for line in logged), logged
