"""``bridge.context(connector=key)``: a connector without per-user auth ("auth false") needs no
``auth.yaml`` and no end user's authentication before integration code runs with it."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import anyio
import pytest

from authbridge.connectors.registry import Registry
from authbridge.sandbox.app import PROFILE
from authbridge.sdk import AsyncClient, Client, InvalidRequest
from tests.support.app import Api

HOST_KEY = "sk_sandbox_host_shared"


@pytest.fixture
def no_auth_api(sdk_api: Api, sandbox_url: str, tmp_path: Path) -> Api:
    """The SDK tests' server plus two connectors without per-user auth: ``acme-notes``, a
    folder holding only a manifest, and ``acme-internal`` (``type: none``), whose requests
    carry a key the host configures once, to the sandbox's API-key service."""
    folder = tmp_path / "no-auth"
    (folder / "acme" / "notes").mkdir(parents=True)
    (folder / "acme" / "notes" / "manifest.yaml").write_text(
        "key: acme-notes\nlabel: Acme notes\n", encoding="utf-8"
    )
    (folder / "acme" / "internal").mkdir(parents=True)
    (folder / "acme" / "internal" / "auth.yaml").write_text(
        dedent(
            f"""\
            type: none
            definition:
              settings:
                api_key: {{type: password, name: Shared API key}}
              request:
                base_url: {sandbox_url}/apikey
                headers: {{X-API-Key: "{{{{api_key}}}}"}}
            """
        ),
        encoding="utf-8",
    )
    (folder / "acme" / "internal" / "manifest.yaml").write_text(
        "key: acme-internal\n", encoding="utf-8"
    )
    added = Registry.load([folder], include_catalog=False)
    sdk_api.bridge.registry = Registry([*sdk_api.bridge.registry, *added])
    return sdk_api


def configure_host_key(api: Api) -> None:
    body = {"settings": {"api_key": HOST_KEY}}
    answer = api.call("PUT", "/v1/connector-configs/acme-internal", json=body)
    assert answer.status_code == 200, answer.text


def test_a_folder_with_only_a_manifest_gives_a_context_without_any_authentication(
    no_auth_api: Api, bridge: Client
) -> None:
    connector = bridge.get_connector("acme-notes")
    assert connector.auth_type == "none"
    assert connector.fields == ()

    with bridge.context(connector="acme-notes") as context:
        assert context.auth_id is None
        assert context.connector == "acme-notes"
        assert dict(context.auth) == {}
        assert context.auth.authentication_id is None

    assert context.http.is_closed
    assert list(bridge.list_authentications()) == []


def test_a_none_connector_s_requests_carry_what_the_host_configured(
    no_auth_api: Api, bridge: Client
) -> None:
    configure_host_key(no_auth_api)

    with bridge.context(connector="acme-internal") as context:
        profile = context.http.get("/me").raise_for_status().json()

    assert profile == PROFILE
    assert list(bridge.list_authentications()) == []  # no end user connected anything
    events = no_auth_api.call("GET", "/v1/audit-events", params={"target_id": "acme-internal"})
    assert [event["action"] for event in events.json()["items"]] == ["connector.request_auth_read"]
    assert HOST_KEY not in events.text


def test_the_async_context_works_the_same(no_auth_api: Api) -> None:
    configure_host_key(no_auth_api)

    async def run() -> object:
        async with (
            AsyncClient(no_auth_api.url, no_auth_api.master_token) as client,
            client.context(connector="acme-internal") as context,
        ):
            response = await context.http.get("/me")
            return response.raise_for_status().json()

    assert anyio.run(run) == PROFILE


def test_a_401_is_answered_as_it_is_with_nothing_to_refresh(
    no_auth_api: Api, bridge: Client
) -> None:
    body = {"settings": {"api_key": "not-a-sandbox-key"}}
    assert no_auth_api.call("PUT", "/v1/connector-configs/acme-internal", json=body).is_success

    with bridge.context(connector="acme-internal") as context:
        response = context.http.get("/me")

    assert response.status_code == 401
    assert response.history == []


def test_an_unconfigured_setting_and_a_per_user_connector_are_clear_errors(
    no_auth_api: Api, bridge: Client
) -> None:
    with pytest.raises(InvalidRequest, match="api_key"):
        bridge.connector_request_auth("acme-internal")
    with pytest.raises(InvalidRequest, match="each end user connects an account"):
        bridge.connector_request_auth("sdk-oauth2")
    with pytest.raises(ValueError, match="not both"), bridge.context("an-id", connector="x"):
        pass
    with pytest.raises(ValueError, match="not both"), bridge.context():
        pass
