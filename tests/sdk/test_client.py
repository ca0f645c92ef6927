"""The REST client: round trips against a real server, typed errors, no token in any repr."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

import authbridge.sdk
from authbridge.sdk import (
    AsyncClient,
    AuthbridgeAPIError,
    Client,
    Conflict,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)
from tests.sdk.conftest import RevokingProvider, connect_oauth
from tests.support.app import SANDBOX_KEY, Api


def import_key(bridge: Client, user: str, name: str | None = None) -> str:
    fields = {"api_key": SANDBOX_KEY}
    return bridge.import_authentication(
        "sandbox-apikey", external_user_id=user, fields=fields, name=name
    ).id


def test_public_names_are_exported() -> None:
    exported = set(authbridge.sdk.__all__)
    assert exported == {name for name in dir(authbridge.sdk) if not name.startswith("_")}
    assert {"Client", "AsyncClient", "Context", "AsyncContext", "AuthbridgeAPIError"} <= exported


def test_end_users_and_user_tokens(bridge: Client, sdk_api: Api) -> None:
    created = bridge.put_end_user("ada smith?x", name="Ada", email="ada@example.test")
    renamed = bridge.put_end_user("ada smith?x", name="Ada L.")

    assert renamed.id == created.id
    assert bridge.get_end_user("ada smith?x").name == "Ada L."
    assert [user.external_user_id for user in bridge.list_end_users()] == ["ada smith?x"]
    minted = bridge.create_user_token("ada smith?x", ttl_seconds=60)
    assert minted.expires_at > datetime.now(UTC)
    with Client(sdk_api.url, minted.token) as as_user:
        assert as_user.get_end_user("ada smith?x").id == created.id


def test_authentications_round_trip(bridge: Client) -> None:
    auth_id = import_key(bridge, "user-1", name="Primary")

    found = bridge.get_authentication(auth_id)
    assert (found.connector, found.name, found.status) == ("sandbox-apikey", "Primary", "active")
    assert found.external_user_id == "user-1"
    renamed = bridge.update_authentication(auth_id, name="Renamed")
    assert renamed.name == "Renamed"
    later = datetime.now(UTC) + timedelta(days=3)
    scheduled = bridge.update_authentication(auth_id, delete_at=later)
    assert scheduled.delete_at is not None
    assert abs(scheduled.delete_at - later) < timedelta(seconds=1)
    assert bridge.update_authentication(auth_id, clear_delete_at=True).delete_at is None

    credentials = bridge.credentials(auth_id)
    assert dict(credentials) == {"api_key": SANDBOX_KEY}
    assert (credentials.authentication_id, credentials.auth_type) == (auth_id, "api_key")

    bridge.delete_authentication(auth_id)
    with pytest.raises(NotFound):
        bridge.get_authentication(auth_id)


def test_listing_follows_the_cursor_and_filters(bridge: Client) -> None:
    ids = [import_key(bridge, "user-1") for _ in range(5)]
    other = import_key(bridge, "user-2")

    listed = bridge.list_authentications(external_user_id="user-1", page_size=2)

    assert [auth.id for auth in listed] == ids
    everything = [auth.id for auth in bridge.list_authentications(page_size=2)]
    assert everything == [*ids, other]
    assert list(bridge.list_authentications(connector="sdk-oauth2")) == []


def test_refresh_through_the_client(bridge: Client, provider: RevokingProvider) -> None:
    auth_id = connect_oauth(bridge, provider)
    before = bridge.credentials(auth_id)["access_token"]

    refreshed = bridge.refresh(auth_id)

    assert refreshed.outcome == "refreshed"
    assert refreshed.expires_at is not None
    assert bridge.credentials(auth_id)["access_token"] != before
    assert provider.refreshes() == 1


def test_connect_sessions_and_connectors(bridge: Client) -> None:
    session = bridge.create_connect_session(
        "user-9", "sandbox-apikey", origin="http://localhost:3000"
    )
    assert session.url.startswith("http://")
    assert session.url not in repr(session)

    connectors = {connector.key: connector for connector in bridge.list_connectors()}
    assert set(connectors) == {"sandbox-apikey", "sdk-oauth2"}
    apikey = bridge.get_connector("sandbox-apikey")
    assert apikey.auth_type == "api_key"
    assert [field.name for field in apikey.fields] == ["api_key"]


def test_webhook_endpoints(bridge: Client) -> None:
    issued = bridge.create_webhook_endpoint(
        "https://hooks.example.test/authbridge", event_types=["authentication.invalid"]
    )
    assert issued.secret.startswith("whsec_")
    assert issued.secret not in repr(issued)
    assert [endpoint.id for endpoint in bridge.list_webhook_endpoints()] == [issued.id]
    bridge.delete_webhook_endpoint(issued.id)
    assert list(bridge.list_webhook_endpoints()) == []


def test_problems_become_typed_errors(bridge: Client, provider: RevokingProvider) -> None:
    with pytest.raises(NotFound) as missing:
        bridge.get_authentication("no-such-id")
    assert (missing.value.status, missing.value.title) == (404, "Not Found")
    assert "no-such-id" in missing.value.detail

    with pytest.raises(InvalidRequest) as invalid:
        bridge.create_user_token("user-1", ttl_seconds=0)
    assert invalid.value.status == 422
    assert "ttl_seconds" in invalid.value.detail

    with pytest.raises(InvalidRequest) as bad_field:
        bridge.import_authentication("sandbox-apikey", external_user_id="u", fields={})
    assert bad_field.value.field == "api_key"

    key_auth = import_key(bridge, "user-1")
    with pytest.raises(Conflict) as conflict:
        bridge.refresh(key_auth)
    assert conflict.value.code == "conflict"

    oauth = connect_oauth(bridge, provider)
    provider.fail_next = (503, {"error": "temporarily_unavailable"})
    with pytest.raises(Unavailable) as unavailable:
        bridge.refresh(oauth)
    assert unavailable.value.status == 503
    assert unavailable.value.retry_after is not None
    assert unavailable.value.retry_after > 0


def test_a_wrong_token_is_unauthorized_and_never_shown(sdk_api: Api) -> None:
    token = "abk_" + "x" * 40
    with Client(sdk_api.url, token) as client, pytest.raises(Unauthorized) as refused:
        client.list_connectors()

    shown = [str(refused.value), repr(refused.value), repr(client), repr(client._http.auth)]
    assert all(token not in text for text in shown)
    assert isinstance(refused.value, AuthbridgeAPIError)


def test_secrets_stay_out_of_reprs(
    bridge: Client, provider: RevokingProvider, sdk_api: Api
) -> None:
    auth_id = connect_oauth(bridge, provider)
    minted = bridge.create_user_token("user-1")
    with bridge.context(auth_id) as context:
        access = context.auth["access_token"]
        shown = [
            repr(bridge),
            repr(minted),
            repr(context),
            repr(context.auth),
            repr(context.http.auth),
            repr(bridge.request_auth(auth_id)),
        ]

    for secret in (sdk_api.master_token, minted.token, access):
        assert all(secret not in text for text in shown)


def test_a_non_problem_error_answer_is_still_typed() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>proxy error</html>", headers={"Retry-After": "7"})

    client = Client("http://authbridge.test", "abk_t", transport=httpx.MockTransport(reply))
    with client, pytest.raises(Unavailable) as unavailable:
        client.list_connectors()

    assert unavailable.value.retry_after == 7
    assert unavailable.value.detail == "Service Unavailable"


@pytest.mark.anyio
async def test_async_client_round_trips(sdk_api: Api) -> None:
    async with AsyncClient(sdk_api.url, sdk_api.master_token) as bridge:
        ids = []
        for _ in range(3):
            auth = await bridge.import_authentication(
                "sandbox-apikey", external_user_id="user-1", fields={"api_key": SANDBOX_KEY}
            )
            ids.append(auth.id)

        listed = [auth.id async for auth in bridge.list_authentications(page_size=2)]
        credentials = await bridge.credentials(ids[0])
        with pytest.raises(NotFound):
            await bridge.get_connector("nope")

    assert listed == ids
    assert credentials["api_key"] == SANDBOX_KEY
