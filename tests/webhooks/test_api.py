"""``/v1/webhook-endpoints`` and ``/v1/webhook-deliveries``: managing endpoints, the outbox
written with each change, and delivery to a real receiver on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook
from starlette.responses import Response

from authbridge.http import EgressPolicy, OutboundClient
from authbridge.webhooks import delivery as webhooks
from tests.support.api_calls import assert_problem, import_key, user_token
from tests.support.app import Api
from tests.support.loopback import RecordingApp, serve


def deliver(api: Api) -> int:
    """One delivery round, as the worker runs it (with an outbound client of its own)."""

    async def run() -> int:
        async with OutboundClient(EgressPolicy(allow_loopback=True), timeout=5) as http:
            return await webhooks.deliver_due(replace(api.bridge, http=http))

    return asyncio.run(run())


@contextmanager
def receiver(status: int = 200) -> Iterator[tuple[str, RecordingApp]]:
    app = RecordingApp(lambda _received: Response("ok", status_code=status))
    with serve(app) as url:
        yield url + "/webhooks", app


def add_endpoint(api: Api, url: str, **body: Any) -> dict[str, Any]:
    response = api.call("POST", "/v1/webhook-endpoints", json={"url": url} | body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def list_of(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    response = api.call("GET", path, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def event_types(api: Api) -> list[str]:
    return [event["type"] for event in list_of(api, "/v1/webhook-events")]


def test_an_imported_authentication_is_delivered_signed(api: Api) -> None:
    with receiver() as (url, app):
        endpoint = add_endpoint(api, url, description="backend")
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        auth = import_key(api)

        assert deliver(api) == 1

    [request] = app.requests
    message = Webhook(secret).verify(request.body, request.headers)
    assert message["type"] == "authentication.created"
    data = message["data"]
    assert data["authId"] == auth["id"]
    assert data["authentication_name"] == auth["name"]
    assert data["service_name"] == "sandbox-apikey"
    assert data["external_user_id"] == "user-1"
    assert data["status"] == "active"
    assert "sk_sandbox" not in request.body.decode()  # never a credential
    [delivery] = list_of(api, "/v1/webhook-deliveries")
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["event_type"] == "authentication.created"
    assert delivery["event_id"] == request.headers["webhook-id"]
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["next_attempt_at"] is None


def test_endpoints_receive_only_their_event_types(api: Api) -> None:
    with receiver() as (url, app):
        endpoint = add_endpoint(api, url, event_types=["authentication.deleted"])
        assert endpoint["event_types"] == ["authentication.deleted"]
        auth = import_key(api)
        assert deliver(api) == 0
        assert api.call("DELETE", f"/v1/authentications/{auth['id']}").status_code == 204
        assert deliver(api) == 1

    [request] = app.requests
    message = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert message["type"] == "authentication.deleted"
    assert message["data"]["authId"] == auth["id"]
    assert event_types(api) == ["authentication.created", "authentication.deleted"]


def test_a_change_that_fails_writes_no_event(api: Api) -> None:
    add_endpoint(api, "https://hooks.example.com/in")
    missing = api.call("DELETE", "/v1/authentications/00000000-0000-0000-0000-000000000000")
    assert_problem(missing, 404, "not_found")
    body = {
        "connector": "sandbox-apikey",
        "external_user_id": "user-1",
        "fields": {"api_key": "sk_live_not_sandbox"},
    }
    refused = api.call("POST", "/v1/authentications", json=body)
    assert_problem(refused, 422, "credentials_rejected")
    unknown = api.call("POST", "/v1/authentications", json=body | {"connector": "nope"})
    assert unknown.status_code == 404

    assert event_types(api) == []
    assert list_of(api, "/v1/webhook-deliveries") == []

    import_key(api)
    assert event_types(api) == ["authentication.created"]
    assert len(list_of(api, "/v1/webhook-deliveries")) == 1


def test_the_secret_is_shown_once_and_stored_encrypted(api: Api) -> None:
    created = add_endpoint(api, "https://hooks.example.com/in", event_types=[])
    secret = created["secret"]
    key = secret.removeprefix("whsec_")

    shown = [
        api.call("GET", f"/v1/webhook-endpoints/{created['id']}").text,
        api.call("GET", "/v1/webhook-endpoints").text,
        api.call("PATCH", f"/v1/webhook-endpoints/{created['id']}", json={"enabled": True}).text,
    ]
    assert all(created["id"] in body and key not in body for body in shown)
    assert "secret" not in api.call("GET", f"/v1/webhook-endpoints/{created['id']}").json()
    with api.bridge.session() as session:
        [row] = session.execute(text("SELECT * FROM webhook_endpoints")).all()
    stored = repr(tuple(row)).encode() + bytes(row.secret_ct)
    assert key.encode() not in stored
    assert b"whsec_" not in stored

    rotated = api.call("POST", f"/v1/webhook-endpoints/{created['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != secret


def test_invalid_endpoints_are_422_problems(api: Api) -> None:
    cases = {
        "ftp://hooks.example.com/": "url",
        "not a url": "url",
        "https://user:hunter2secret@hooks.example.com/": "url",
        "http://169.254.169.254/latest/meta-data": "url",
    }
    for url, field in cases.items():
        response = api.call("POST", "/v1/webhook-endpoints", json={"url": url})
        problem = assert_problem(response, 422, "invalid_input")
        assert problem["field"] == field, url
        assert "hunter2secret" not in response.text
    unknown = api.call(
        "POST",
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/", "event_types": ["authentication.exploded"]},
    )
    problem = assert_problem(unknown, 422, "invalid_input")
    assert problem["field"] == "event_types"
    assert "authentication.exploded" in problem["detail"]
    extra = api.call("POST", "/v1/webhook-endpoints", json={"url": "https://a.example/", "x": 1})
    assert_problem(extra, 422, "invalid_request")
    missing = api.call("POST", "/v1/webhook-endpoints", json={})
    assert_problem(missing, 422, "invalid_request")
    assert list_of(api, "/v1/webhook-endpoints") == []


def test_endpoints_are_read_changed_and_deleted(api: Api) -> None:
    created = add_endpoint(api, "https://hooks.example.com/a", description="first")
    path = f"/v1/webhook-endpoints/{created['id']}"
    fetched = api.call("GET", path).json()
    assert fetched == {key: value for key, value in created.items() if key != "secret"}
    assert fetched["event_types"] == []
    assert fetched["enabled"] is True

    changed = api.call(
        "PATCH",
        path,
        json={
            "url": "https://hooks.example.com/b",
            "event_types": ["authentication.invalid", "authentication.created"],
            "enabled": False,
            "description": "",
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["url"] == "https://hooks.example.com/b"
    assert body["event_types"] == ["authentication.created", "authentication.invalid"]
    assert body["enabled"] is False
    assert body["description"] is None
    bad = api.call("PATCH", path, json={"event_types": ["nope"]})
    assert assert_problem(bad, 422, "invalid_input")["field"] == "event_types"
    assert api.call("GET", path).json()["event_types"] == body["event_types"]

    import_key(api)  # a disabled endpoint is sent nothing: the event waits for a redelivery
    [kept] = list_of(api, "/v1/webhook-deliveries")
    assert (kept["status"], kept["attempts"]) == ("failed", 0)
    assert kept["last_error"] == "the endpoint is disabled"

    assert api.call("DELETE", path).status_code == 204
    assert_problem(api.call("GET", path), 404, "not_found")
    assert_problem(api.call("DELETE", path), 404, "not_found")
    assert_problem(api.call("PATCH", path, json={"enabled": True}), 404, "not_found")


def test_webhooks_need_a_master_token(api: Api) -> None:
    token = user_token(api, "user-1")
    for method, path in [
        ("GET", "/v1/webhook-endpoints"),
        ("GET", "/v1/webhook-deliveries"),
        ("GET", "/v1/webhook-events"),
    ]:
        assert_problem(api.call(method, path, token=token), 403, "forbidden")
    created = api.call(
        "POST", "/v1/webhook-endpoints", token=token, json={"url": "https://a.example/"}
    )
    assert_problem(created, 403, "forbidden")
    assert_problem(api.call("GET", "/v1/webhook-endpoints", token="abk_nope"), 401)


def test_deliveries_are_listed_with_filters_and_pages(api: Api) -> None:
    with receiver(500) as (failing_url, _), receiver() as (ok_url, _):
        failing = add_endpoint(api, failing_url)
        ok = add_endpoint(api, ok_url, event_types=["authentication.created"])
        first = import_key(api, "user-1")
        import_key(api, "user-2")
        assert api.call("DELETE", f"/v1/authentications/{first['id']}").status_code == 204
        assert deliver(api) == 5

    everything = list_of(api, "/v1/webhook-deliveries")
    assert len(everything) == 5
    assert [d["created_at"] for d in everything] == sorted(d["created_at"] for d in everything)
    pending = list_of(api, "/v1/webhook-deliveries", status="pending")
    assert {d["endpoint_id"] for d in pending} == {failing["id"]}
    assert len(pending) == 3
    for delivery in pending:
        assert delivery["attempts"] == 1
        assert delivery["last_status_code"] == 500
        assert delivery["last_error"] == "the endpoint answered HTTP 500"
        assert delivery["next_attempt_at"] > delivery["last_attempt_at"]
    succeeded = list_of(api, "/v1/webhook-deliveries", status="succeeded")
    assert {d["endpoint_id"] for d in succeeded} == {ok["id"]}
    assert {d["event_type"] for d in succeeded} == {"authentication.created"}
    deleted = list_of(api, "/v1/webhook-deliveries", event_type="authentication.deleted")
    assert [d["endpoint_id"] for d in deleted] == [failing["id"]]
    assert len(list_of(api, "/v1/webhook-deliveries", endpoint_id=ok["id"])) == 2
    assert list_of(api, "/v1/webhook-deliveries", status="failed") == []

    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.call("GET", "/v1/webhook-deliveries", params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d["id"] for d in everything]
    bad_status = api.call("GET", "/v1/webhook-deliveries", params={"status": "lost"})
    assert_problem(bad_status, 422, "invalid_request")
    bad_cursor = api.call("GET", "/v1/webhook-deliveries", params={"cursor": "nope"})
    assert assert_problem(bad_cursor, 422, "invalid_input")["field"] == "cursor"

    # deleting an endpoint drops its deliveries (the events stay in the outbox)
    assert api.call("DELETE", f"/v1/webhook-endpoints/{failing['id']}").status_code == 204
    assert {d["endpoint_id"] for d in list_of(api, "/v1/webhook-deliveries")} == {ok["id"]}
    assert len(event_types(api)) == 3


def test_a_test_event_is_sent_at_once(api: Api) -> None:
    with receiver() as (url, app):
        endpoint = add_endpoint(api, url, event_types=["authentication.expired"])
        response = api.call("POST", f"/v1/webhook-endpoints/{endpoint['id']}/test")
        assert response.status_code == 200, response.text

    delivery = response.json()
    assert delivery["event_type"] == "webhook.test"
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1
    [request] = app.requests
    message = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert message["type"] == "webhook.test"
    assert message["data"]["endpoint_id"] == endpoint["id"]
    missing = api.call("POST", "/v1/webhook-endpoints/nope/test")
    assert_problem(missing, 404, "not_found")


@pytest.mark.parametrize("status", [404, 500])
def test_a_failing_test_event_is_answered_and_left_to_retry(api: Api, status: int) -> None:
    with receiver(status) as (url, app):
        endpoint = add_endpoint(api, url)
        response = api.call("POST", f"/v1/webhook-endpoints/{endpoint['id']}/test")

    assert response.status_code == 200, response.text
    delivery = response.json()
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] == status
    assert delivery["next_attempt_at"] is not None
    assert len(app.requests) == 1


def test_local_addresses_are_refused_when_an_endpoint_is_registered(api: Api) -> None:
    # The tests' server allows loopback (as the sandbox's does): its spellings pass, judged as
    # the egress policy judges them when sending; every other local address is refused.
    refused = {
        "http://0/in": "0.0.0.0 (written '0'), an unspecified address",
        "http://0.0.0.0:8080/in": "0.0.0.0, an unspecified address",
        "http://10.1/in": "10.0.0.1 (written '10.1'), a private address",
        "http://2852039166/latest": "169.254.169.254 (written '2852039166'), a link-local",
        "http://[::ffff:10.0.0.1]/in": "10.0.0.1 (written '::ffff:10.0.0.1'), a private",
    }
    for url, reason in refused.items():
        response = api.call("POST", "/v1/webhook-endpoints", json={"url": url})
        problem = assert_problem(response, 422, "invalid_input")
        assert problem["field"] == "url", url
        assert reason in problem["detail"], problem["detail"]
    assert list_of(api, "/v1/webhook-endpoints") == []
    created = add_endpoint(api, "https://hooks.example.com/in")
    moved = api.call("PATCH", f"/v1/webhook-endpoints/{created['id']}", json={"url": "http://0/"})
    assert "unspecified address" in assert_problem(moved, 422, "invalid_input")["detail"]
    assert add_endpoint(api, "http://0x7f000001:9/in")["url"] == "http://0x7f000001:9/in"


def test_an_event_is_redelivered_by_the_worker_not_by_the_request(api: Api) -> None:
    with receiver() as (url, app):
        endpoint = add_endpoint(api, url)
        import_key(api)
        assert deliver(api) == 1
        [first] = list_of(api, "/v1/webhook-deliveries")
        path = f"/v1/webhook-endpoints/{endpoint['id']}/events/{first['event_id']}/redeliver"

        response = api.call("POST", path)
        assert response.status_code == 202, response.text
        queued = response.json()
        assert (queued["status"], queued["attempts"]) == ("pending", 0)
        assert queued["event_id"] == first["event_id"]
        assert queued["id"] != first["id"]
        assert len(app.requests) == 1  # the request only queued it
        assert api.call("POST", path).json()["id"] == queued["id"]  # queued once
        assert deliver(api) == 1

    first_sent, again = app.requests
    assert again.headers["webhook-id"] == first_sent.headers["webhook-id"] == first["event_id"]
    Webhook(endpoint["secret"]).verify(again.body, again.headers)
    statuses = [d["status"] for d in list_of(api, "/v1/webhook-deliveries")]
    assert statuses == ["succeeded", "succeeded"]
    unknown = f"/v1/webhook-endpoints/{endpoint['id']}/events/nope/redeliver"
    assert "webhook event 'nope'" in assert_problem(api.call("POST", unknown), 404)["detail"]
    no_endpoint = f"/v1/webhook-endpoints/nope/events/{first['event_id']}/redeliver"
    assert_problem(api.call("POST", no_endpoint), 404, "not_found")
    api.call("PATCH", f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": False})
    assert "enable it first" in assert_problem(api.call("POST", path), 409)["detail"]


def test_a_time_range_is_redelivered_page_by_page(api: Api) -> None:
    with receiver(500) as (url, app):
        endpoint = add_endpoint(api, url)
        since = api.bridge.now().isoformat()
        for user in ("user-1", "user-2", "user-3"):
            import_key(api, user)
        path = f"/v1/webhook-endpoints/{endpoint['id']}/redeliver"

        waiting = api.call("POST", path, json={"since": since})  # still being retried
        assert waiting.status_code == 202, waiting.text
        assert waiting.json() == {"queued": 0, "already_pending": 3, "next_cursor": None}
        with api.bridge.session() as session:  # as if their 24 hours had run out
            session.execute(
                text("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL")
            )
        first = api.call("POST", path, json={"since": since, "failed_only": True, "limit": 2})
        assert first.status_code == 202, first.text
        assert first.json()["queued"] == 2
        cursor = first.json()["next_cursor"]
        assert cursor is not None
        rest = api.call("POST", path, json={"since": since, "failed_only": True, "cursor": cursor})
        assert rest.json() == {"queued": 1, "already_pending": 0, "next_cursor": None}
        assert app.requests == []
        assert deliver(api) == 3
    assert len(app.requests) == 3

    for body, field in [
        ({"since": "2026-01-01T00:00:00"}, None),  # no time zone
        ({"since": since, "until": "2000-01-01T00:00:00Z"}, "since"),
        ({"since": since, "limit": 0}, None),
        ({"since": since, "cursor": "nope"}, "cursor"),
        ({}, None),
    ]:
        response = api.call("POST", path, json=body)
        problem = assert_problem(response, 422)
        assert problem.get("field") == field or field is None, problem
    missing = api.call("POST", "/v1/webhook-endpoints/nope/redeliver", json={"since": since})
    assert_problem(missing, 404, "not_found")


def test_an_endpoint_chooses_the_tray_body_and_its_warning_window(api: Api) -> None:
    created = add_endpoint(
        api, "https://hooks.example.com/tray", payload_format="tray", expiry_warning_days=10
    )
    assert created["payload_format"] == "tray"
    assert created["expiry_warning_days"] == 10
    assert created["event_types"] == ["authentication.expiring"]
    path = f"/v1/webhook-endpoints/{created['id']}"
    cleared = api.call("PATCH", path, json={"expiry_warning_days": None}).json()
    assert cleared["expiry_warning_days"] is None
    assert cleared["payload_format"] == "tray"
    kept = api.call("PATCH", path, json={"description": "tray receivers"}).json()
    assert kept["expiry_warning_days"] is None
    assert (
        api.call("PATCH", path, json={"expiry_warning_days": 8.5}).json()["expiry_warning_days"]
        == 8.5
    )

    bad = {
        "payload_format": "xml",
        "expiry_warning_days": 0,
    }
    for field, value in bad.items():
        response = api.call("PATCH", path, json={field: value})
        assert_problem(response, 422, "invalid_request")
    wrong = api.call(
        "POST",
        "/v1/webhook-endpoints",
        json={
            "url": "https://hooks.example.com/x",
            "payload_format": "tray",
            "event_types": ["authentication.created"],
        },
    )
    problem = assert_problem(wrong, 422, "invalid_input")
    assert problem["field"] == "event_types"
    assert "tray" in problem["detail"]
    assert api.call("GET", path).json()["expiry_warning_days"] == 8.5
