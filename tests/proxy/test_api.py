"""``/v1/proxy/{auth_id}/{path}``: requests forwarded to a loopback API with credentials applied.

The upstream is a real server on loopback that records what reached it; OAuth 2 refreshes go to
the loopback OAuth 2 provider of ``tests/support``, OAuth 1.0a signatures are verified by the
loopback OAuth 1.0a provider (Authlib's server side).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from authbridge.api.limits import PROXY_BODY
from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.connectors.registry import Registry
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.proxy.service import request_headers, response_headers
from authbridge.services.principals import DEFAULT_CACHE_SECONDS
from authbridge.tenancy.repository import EndUserRepository, MasterTokenRepository
from tests.support import raw_http
from tests.support.api_calls import assert_problem, user_token
from tests.support.app import Api
from tests.support.loopback import serve
from tests.support.oauth1_provider import Credential, OAuth1Provider
from tests.support.oauth2_provider import OAuth2Provider

MIB = 1024 * 1024
API_KEY = "sk_live_proxy_0123456789"
CLIENT_ID, CLIENT_SECRET = "proxy-client", "proxy-secret"
CONSUMER_KEY, CONSUMER_SECRET = "proxy-consumer", "proxy-consumer-secret"
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

CONNECTORS = {
    "proxy-apikey": """
        type: api_key
        definition:
          auth:
            api_key: {type: password, name: API key}
          request:
            base_url: $UPSTREAM/api
            headers: {X-Api-Key: "Key {{api_key}}"}
            params: {key: "{{api_key}}"}
        """,
    "proxy-basic": """
        type: api_key
        definition:
          auth:
            account: {type: text, name: Account}
            secret: {type: password, name: Secret}
          request:
            base_url: $UPSTREAM/api
            auth: {username: "{{account}}", password: "{{secret}}"}
        """,
    "proxy-oauth2": """
        type: oauth2
        definition:
          auth_url: $OAUTH2/authorize
          request_access_token: $OAUTH2/token
          request:
            base_url: $UPSTREAM/api
        """,
    "proxy-oauth1": """
        type: oauth1
        definition:
          request_request_token: $OAUTH1/initiate
          auth_url: $OAUTH1/authorize?oauth_token={{request_token}}
          request_access_token: $OAUTH1/token
          request:
            base_url: $OAUTH1
        """,
    "proxy-client": """
        type: api_key
        definition:
          auth:
            api_key: {type: password, name: API key}
          request:
            base_url: $UPSTREAM/api
            headers: {X-Api-Key: "{{api_key}}", X-Client: "{{client_id}}"}
        """,
    "proxy-nobase": """
        type: api_key
        definition:
          auth:
            api_key: {type: password, name: API key}
        """,
    "proxy-metadata": """
        type: api_key
        definition:
          auth:
            api_key: {type: password, name: API key}
          request:
            base_url: http://169.254.169.254/latest
            headers: {X-Api-Key: "{{api_key}}"}
        """,
    "proxy-closed": """
        type: api_key
        definition:
          auth:
            api_key: {type: password, name: API key}
          request:
            base_url: http://127.0.0.1:$CLOSED/api
        """,
}


@dataclass(frozen=True)
class Seen:
    """One request as the upstream saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, list[str]]
    size: int
    digest: str

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


@dataclass
class Upstream:
    """The loopback API behind the proxy.

    ``/api/echo/...`` answers what it saw (status from ``?status=``) with extra headers,
    hop-by-hop ones among them; ``/api/upload`` and ``/api/download`` stream 5 MiB and check
    that the other side streams too; ``/api/bearer`` accepts only the provider's current
    access tokens; ``/api/unauthorized`` always answers 401; ``/api/slow`` takes 3 seconds.
    """

    oauth2: OAuth2Provider
    seen: list[Seen] = field(default_factory=list)
    upload_first_part: threading.Event = field(default_factory=threading.Event)
    download_first_part: threading.Event = field(default_factory=threading.Event)
    download_streamed: list[bool] = field(default_factory=list)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/{rest:path}", self.handle, methods=list(ALL_METHODS))])

    async def _record(self, request: Request) -> Seen:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            if size >= MIB:
                self.upload_first_part.set()
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name, []).append(value)
        seen = Seen(
            method=request.method,
            path=request.scope["raw_path"].decode(),
            query=request.scope["query_string"].decode(),
            headers=headers,
            size=size,
            digest=digest.hexdigest(),
        )
        self.seen.append(seen)
        return seen

    async def handle(self, request: Request) -> Response:
        seen = await self._record(request)
        rest = request.path_params["rest"]
        if rest == "download":
            return StreamingResponse(self._download(), media_type="application/octet-stream")
        if rest == "slow":
            await anyio.sleep(3)
        if rest == "unauthorized":
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        if rest == "bearer":
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.oauth2.access_tokens:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
        body = {"size": seen.size, "digest": seen.digest, "path": seen.path}
        status = int(request.query_params.get("status", "200"))
        answer: Response = JSONResponse(body, status_code=status)
        if request.method == "HEAD":
            answer = Response(status_code=status, headers={"Content-Length": "42"})
        answer.headers["X-Upstream"] = "yes"
        answer.headers["Keep-Alive"] = "timeout=5"
        answer.headers["Proxy-Authenticate"] = "Basic"
        answer.headers["X-Hop"] = "dropped"
        answer.headers["Connection"] = "X-Hop"
        answer.raw_headers += [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        return answer

    async def _download(self) -> AsyncIterator[bytes]:
        yield b"a" * MIB
        # Sent on only once the client has the first part: a proxy that buffered the whole
        # answer would make this wait time out.
        streamed = await anyio.to_thread.run_sync(self.download_first_part.wait, 10)
        self.download_streamed.append(streamed)
        for _ in range(4):
            yield b"b" * MIB


@dataclass
class Proxy:
    api: Api
    upstream: Upstream
    upstream_url: str
    oauth1: OAuth1Provider

    def url(self, auth_id: str, path: str) -> str:
        return f"/v1/proxy/{auth_id}/{path}"

    def call(
        self, method: str, auth_id: str, path: str, *, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        return self.api.call(method, self.url(auth_id, path), token=token, **kw)

    def import_auth(self, connector: str, user: str = "user-1", **body: Any) -> str:
        payload = {"connector": connector, "external_user_id": user, "validate": False}
        response = self.api.call("POST", "/v1/authentications", json=payload | body)
        assert response.status_code == 201, response.text
        auth_id: str = response.json()["id"]
        return auth_id

    def api_key_auth(self, connector: str = "proxy-apikey", user: str = "user-1") -> str:
        return self.import_auth(connector, user, fields={"api_key": API_KEY})

    def oauth2_auth(self, access_token: str, *, due: bool = False) -> str:
        """An OAuth 2 authentication with a refresh token the provider accepts."""
        refresh_token = "rt-proxy-" + access_token
        self.upstream.oauth2.refresh_tokens.add(refresh_token)
        now = self.api.bridge.now()
        with self.api.bridge.session() as session:
            end_user = EndUserRepository(session).get_or_create(self.api.environment_id, "user-1")
            auth = AuthenticationRepository(session, self.api.bridge.keyring).create(
                environment_id=self.api.environment_id,
                end_user_id=end_user.id,
                connector_key="proxy-oauth2",
                connector_version="1",
                auth_type="oauth2",
                name="OAuth 2",
                credentials={"access_token": access_token, "refresh_token": refresh_token},
                expires_at=now + timedelta(seconds=30 if due else 3600),
                refresh_due_at=now + (timedelta(seconds=-1) if due else timedelta(minutes=55)),
            )
            return auth.id

    def swap_http(self, client: OutboundClient) -> Callable[[], None]:
        previous = self.api.bridge.http
        self.api.bridge.http = client

        def restore() -> None:
            self.api.bridge.http = previous

        return restore


@dataclass(frozen=True)
class Servers:
    upstream: Upstream
    upstream_url: str
    oauth2_url: str
    oauth1: OAuth1Provider
    oauth1_url: str


@pytest.fixture
def servers() -> Iterator[Servers]:
    """The upstream API and the OAuth 2 and OAuth 1.0a providers, each on a loopback port."""
    oauth2 = OAuth2Provider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    upstream = Upstream(oauth2)
    oauth1 = OAuth1Provider()
    oauth1.add_consumer(CONSUMER_KEY, CONSUMER_SECRET)
    with (
        serve(upstream.app) as upstream_url,
        serve(oauth2.app) as oauth2_url,
        serve(oauth1.app) as oauth1_url,
    ):
        yield Servers(upstream, upstream_url, oauth2_url, oauth1, oauth1_url)


@pytest.fixture
def proxied(api: Api, tmp_path: Path, servers: Servers) -> Proxy:
    """The API with the connectors above (and their configurations) and the servers."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = str(unused.getsockname()[1])
    values = {
        "$UPSTREAM": servers.upstream_url,
        "$OAUTH2": servers.oauth2_url,
        "$OAUTH1": servers.oauth1_url,
        "$CLOSED": closed_port,
    }
    for key, text in CONNECTORS.items():
        folder = tmp_path / "proxy" / "tests" / key
        folder.mkdir(parents=True)
        text = textwrap.dedent(text)
        for name, value in values.items():
            text = text.replace(name, value)
        (folder / "auth.yaml").write_text(text, encoding="utf-8")
    api.bridge.registry = Registry.load([tmp_path / "proxy"], include_catalog=False)
    with api.bridge.session() as session:
        configs = ConnectorConfigRepository(session, api.bridge.keyring)
        configs.upsert(
            api.environment_id, "proxy-oauth2", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
        configs.upsert(
            api.environment_id,
            "proxy-oauth1",
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
        )
    return Proxy(api, servers.upstream, servers.upstream_url, servers.oauth1)


def audit_events(api: Api, auth_id: str, expected: int) -> list[dict[str, Any]]:
    """The proxied requests' audit rows of ``auth_id``, once ``expected`` of them are written
    (a background task writes them within milliseconds of the answer), or after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        answer = api.call("GET", "/v1/audit-events", params={"target_id": auth_id})
        items: list[dict[str, Any]] = answer.json()["items"]
        proxied = [item for item in items if item["action"] == "authentication.proxied"]
        if len(proxied) >= expected or time.monotonic() > deadline:
            return proxied
        time.sleep(0.02)


# -- pass-through ------------------------------------------------------------------------------


def test_status_headers_query_and_body_pass_through_both_ways(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    answer = proxied.call(
        "POST",
        auth_id,
        "echo/a%2Fb/c?status=201&q=x%20y&q=2",
        content=b'{"hello": "world"}',
        headers={"Content-Type": "application/json", "X-Custom": "kept", "Cookie": "ab_x=1; o=2"},
    )

    assert answer.status_code == 201
    assert answer.json()["size"] == 18
    assert answer.headers["x-upstream"] == "yes"
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert answer.headers["content-length"] == str(len(answer.content))
    seen = proxied.upstream.seen[-1]
    assert seen.method == "POST"
    assert seen.path == "/api/echo/a%2Fb/c"
    assert seen.query.startswith("status=201&q=x%20y&q=2")
    assert seen.header("x-custom") == "kept"
    assert seen.header("content-type") == "application/json"
    assert seen.header("content-length") == "18"
    assert seen.header("cookie") == "o=2"
    assert seen.digest == hashlib.sha256(b'{"hello": "world"}').hexdigest()


def test_every_method_is_forwarded(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    for method in ALL_METHODS:
        answer = proxied.call(method, auth_id, "echo")
        assert answer.status_code == 200, (method, answer.text)
        assert proxied.upstream.seen[-1].method == method

    assert proxied.call("HEAD", auth_id, "echo").headers["content-length"] == "42"


def test_hop_by_hop_headers_and_our_token_are_not_forwarded(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    answer = proxied.call(
        "GET",
        auth_id,
        "echo",
        headers={
            "Connection": "keep-alive, X-Private",
            "X-Private": "hop",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic eHg6eXk=",
            "TE": "trailers",
        },
    )

    seen = proxied.upstream.seen[-1]
    for name in ("x-private", "keep-alive", "proxy-authorization", "te"):
        assert name not in seen.headers, name
    assert seen.headers["connection"] == ["keep-alive"]  # httpx's own, for its own hop
    assert seen.header("host") == proxied.upstream_url.removeprefix("http://")
    assert proxied.api.master_token not in json.dumps(seen.headers)
    assert "authorization" not in seen.headers
    for name in ("keep-alive", "proxy-authenticate", "x-hop"):
        assert name not in answer.headers, name
    assert "x-hop" not in answer.headers.get("connection", "").lower()


def test_cookies_an_upstream_sets_never_go_out_with_later_requests(proxied: Proxy) -> None:
    mine = proxied.api_key_auth(user="user-1")
    theirs = proxied.api_key_auth(user="user-2")

    first = proxied.call("GET", mine, "echo")
    proxied.call("GET", theirs, "echo")

    assert first.headers.get_list("set-cookie") == ["a=1", "b=2"]  # the caller gets them
    assert [seen.header("cookie") for seen in proxied.upstream.seen] == [None, None]


def test_the_header_filters_drop_every_hop_by_hop_header() -> None:
    sent = [
        (b"Connection", b"Upgrade, X-Named"),
        (b"X-Named", b"1"),
        (b"Upgrade", b"websocket"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Trailer", b"X-Sum"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"Authorization", b"Bearer abk_ours"),
        (b"Host", b"authbridge.example"),
        (b"Accept-Encoding", b"gzip"),
        (b"X-Kept", b"1"),
    ]

    assert request_headers(sent) == [("accept-encoding", "gzip"), ("x-kept", "1")]
    assert response_headers(sent) == [
        (b"authorization", b"Bearer abk_ours"),
        (b"host", b"authbridge.example"),
        (b"accept-encoding", b"gzip"),
        (b"x-kept", b"1"),
    ]
    assert ("accept-encoding", "identity") in request_headers([(b"X-Kept", b"1")])


# -- the connector's authentication ------------------------------------------------------------


def test_an_api_key_goes_where_the_rules_put_it(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    assert proxied.call("GET", auth_id, "echo?page=2").status_code == 200

    seen = proxied.upstream.seen[-1]
    assert seen.header("x-api-key") == f"Key {API_KEY}"
    assert seen.query == f"page=2&key={API_KEY}"


def test_basic_credentials_are_sent(proxied: Proxy) -> None:
    auth_id = proxied.import_auth(
        "proxy-basic", fields={"account": "AC123", "secret": "basic secret"}
    )

    assert proxied.call("GET", auth_id, "echo").status_code == 200

    expected = base64.b64encode(b"AC123:basic secret").decode()
    assert proxied.upstream.seen[-1].header("authorization") == f"Basic {expected}"


def test_an_oauth2_bearer_token_is_sent(proxied: Proxy) -> None:
    proxied.upstream.oauth2.access_tokens.add("at-current")
    auth_id = proxied.oauth2_auth("at-current")

    answer = proxied.call("GET", auth_id, "bearer")

    assert answer.status_code == 200
    assert proxied.upstream.seen[-1].header("authorization") == "Bearer at-current"


def test_oauth1_requests_are_signed_for_the_provider(proxied: Proxy) -> None:
    proxied.oauth1.access_tokens["tok-1"] = Credential("tok-secret", CONSUMER_KEY)
    auth_id = proxied.import_auth(
        "proxy-oauth1", tokens={"access_token": "tok-1", "access_token_secret": "tok-secret"}
    )

    answer = proxied.call("GET", auth_id, "me?fields=name")

    assert answer.status_code == 200, answer.text
    assert answer.json()["email"] == "jane@photos.test"
    assert proxied.oauth1.received[-1].oauth_params["oauth_token"] == "tok-1"


def test_due_credentials_are_refreshed_before_the_request(proxied: Proxy) -> None:
    auth_id = proxied.oauth2_auth("at-expiring", due=True)

    answer = proxied.call("GET", auth_id, "bearer")

    assert answer.status_code == 200
    assert [seen.path for seen in proxied.upstream.seen] == ["/api/bearer"]
    assert proxied.upstream.seen[0].header("authorization") != "Bearer at-expiring"
    assert len(proxied.upstream.oauth2.token_requests) == 1


# -- 401: refresh once, retry once -------------------------------------------------------------


def test_a_401_forces_one_refresh_and_one_retry_with_the_same_body(proxied: Proxy) -> None:
    auth_id = proxied.oauth2_auth("at-revoked")  # not among the provider's access tokens
    body = bytes(range(256)) * (8 * 1024)  # 2 MiB: the retry copy spills to disk

    answer = proxied.call("PUT", auth_id, "bearer", content=body)

    assert answer.status_code == 200
    first, second = proxied.upstream.seen
    assert first.header("authorization") == "Bearer at-revoked"
    assert second.header("authorization") != "Bearer at-revoked"
    assert first.digest == second.digest == hashlib.sha256(body).hexdigest()
    grants = [request.form["grant_type"] for request in proxied.upstream.oauth2.token_requests]
    assert grants == ["refresh_token"]
    assert audit_events(proxied.api, auth_id, 1)[-1]["detail"]["retried"] is True


def test_a_second_401_is_returned(proxied: Proxy) -> None:
    auth_id = proxied.oauth2_auth("at-any")

    answer = proxied.call("POST", auth_id, "unauthorized", content=b"payload")

    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token"}
    assert len(proxied.upstream.seen) == 2
    assert len(proxied.upstream.oauth2.token_requests) == 1


def test_an_api_key_401_is_returned_without_a_retry(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    answer = proxied.call("GET", auth_id, "unauthorized")

    assert answer.status_code == 401
    assert len(proxied.upstream.seen) == 1


# -- streaming ---------------------------------------------------------------------------------


def test_a_large_request_body_streams_upstream(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    reached_upstream: list[bool] = []

    def body() -> Iterator[bytes]:
        yield b"x" * MIB
        # The rest is sent only once the upstream has the first part: a proxy that buffered
        # the whole body would make this wait time out.
        reached_upstream.append(proxied.upstream.upload_first_part.wait(10))
        for _ in range(4):
            yield b"y" * MIB

    answer = proxied.call("POST", auth_id, "upload", content=body())

    assert answer.status_code == 200
    assert reached_upstream == [True]
    assert answer.json()["size"] == 5 * MIB


def test_a_body_announced_over_the_proxy_limit_is_refused_before_it_is_sent(
    proxied: Proxy,
) -> None:
    auth_id = proxied.api_key_auth()
    headers = {
        "Authorization": f"Bearer {proxied.api.master_token}",
        "Content-Length": str(PROXY_BODY + 1),
    }
    with raw_http.connect(proxied.api.url) as sock:
        sock.sendall(raw_http.head("POST", proxied.url(auth_id, "upload"), headers))
        answer = raw_http.read_response(sock, timeout=5)  # the body is never sent

    assert answer.status == 413, answer.text
    problem = json.loads(answer.body)
    assert problem["code"] == "request_too_large"
    assert "10 MiB" in problem["detail"]
    assert "AUTHBRIDGE_PROXY_MAX_BODY_BYTES" in problem["detail"]
    assert proxied.upstream.seen == []


def test_a_chunked_body_over_the_proxy_limit_is_cut_off_with_a_413(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    headers = {
        "Authorization": f"Bearer {proxied.api.master_token}",
        "Transfer-Encoding": "chunked",
    }
    with raw_http.connect(proxied.api.url) as sock:
        sock.sendall(raw_http.head("POST", proxied.url(auth_id, "upload"), headers))
        for _ in range(PROXY_BODY // MIB + 1):
            sock.sendall(raw_http.chunk(b"x" * MIB))
        answer = raw_http.read_response(sock)  # before the body's end, which never comes

    assert answer.status == 413, answer.text
    assert json.loads(answer.body)["code"] == "request_too_large"
    assert proxied.upstream.seen == []  # it never had a whole request
    (event,) = audit_events(proxied.api, auth_id, 1)
    assert event["detail"]["status"] == 413


def test_a_large_response_body_streams_to_the_caller(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    received = 0

    with (
        proxied.api.client() as client,
        client.stream("GET", proxied.url(auth_id, "download")) as answer,
    ):
        assert answer.status_code == 200
        for chunk in answer.iter_raw():
            received += len(chunk)
            if received >= MIB:
                proxied.upstream.download_first_part.set()

    assert received == 5 * MIB
    assert proxied.upstream.download_streamed == [True]


# -- who may proxy what ------------------------------------------------------------------------


def test_a_user_token_reaches_only_its_own_authentications(proxied: Proxy) -> None:
    mine = proxied.api_key_auth(user="user-1")
    theirs = proxied.api_key_auth(user="user-2")
    token = user_token(proxied.api, "user-1")

    assert proxied.call("GET", mine, "echo", token=token).status_code == 200
    assert_problem(proxied.call("GET", theirs, "echo", token=token), 404, "not_found")
    assert len(proxied.upstream.seen) == 1


def test_a_token_revoked_elsewhere_stops_working_within_the_cache_bound(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    with proxied.api.bridge.session() as session:
        issued = MasterTokenRepository(session).create(proxied.api.environment_id, "revoked")
    assert proxied.call("GET", auth_id, "echo", token=issued.token).status_code == 200

    # Revoked by another process (the CLI, another server): this one trusts what it checked
    # for the cache's lifetime at most.
    with proxied.api.bridge.session() as session:
        MasterTokenRepository(session).revoke(proxied.api.environment_id, issued.record.id)
    revoked = time.monotonic()
    while (answer := proxied.call("GET", auth_id, "echo", token=issued.token)).status_code == 200:
        assert time.monotonic() - revoked < DEFAULT_CACHE_SECONDS + 0.5
        time.sleep(0.05)

    assert_problem(answer, 401, "unauthenticated")
    assert time.monotonic() - revoked < DEFAULT_CACHE_SECONDS + 0.5


def test_a_token_revoked_through_the_api_stops_working_at_once(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    with proxied.api.bridge.session() as session:
        issued = MasterTokenRepository(session).create(proxied.api.environment_id, "revoked")
    assert proxied.call("GET", auth_id, "echo", token=issued.token).status_code == 200

    revoked = proxied.api.call("DELETE", f"/v1/master-tokens/{issued.record.id}")
    assert revoked.status_code == 204

    answer = proxied.call("GET", auth_id, "echo", token=issued.token)
    assert_problem(answer, 401, "unauthenticated")
    assert len(proxied.upstream.seen) == 1


def test_a_master_tokens_use_is_recorded_by_a_proxied_request(proxied: Proxy) -> None:
    # The read runs read-only; a token whose last use is to be written reads again to write.
    auth_id = proxied.api_key_auth()
    with proxied.api.bridge.session() as session:
        issued = MasterTokenRepository(session).create(proxied.api.environment_id, "fresh")

    assert proxied.call("GET", auth_id, "echo", token=issued.token).status_code == 200

    with proxied.api.bridge.session() as session:
        record = MasterTokenRepository(session).get(proxied.api.environment_id, issued.record.id)
        assert record is not None
        assert record.last_used_at is not None


def test_without_a_token_nothing_is_forwarded(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    answer = httpx.get(proxied.api.url + proxied.url(auth_id, "echo"))

    assert_problem(answer, 401, "unauthenticated")
    assert proxied.upstream.seen == []


def test_a_connector_without_a_base_url_cannot_be_proxied(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth("proxy-nobase")

    problem = assert_problem(proxied.call("GET", auth_id, "echo"), 409, "conflict")

    assert "base URL" in problem["detail"]


def test_dot_segments_are_refused(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    answer = proxied.api.call("GET", f"/v1/proxy/{auth_id}/echo/%2e%2e/admin")

    assert_problem(answer, 422, "invalid_input")
    assert proxied.upstream.seen == []


def send_as_written(proxied: Proxy, target: str) -> httpx.Response:
    """GET ``target`` byte for byte (httpx would resolve a literal ``..`` before sending)."""
    parts = urlsplit(proxied.api.url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(
            "GET", target, headers={"Authorization": f"Bearer {proxied.api.master_token}"}
        )
        answer = connection.getresponse()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())
    finally:
        connection.close()


#: Paths that leave ``/api/echo/`` at an upstream that decodes ``%2f`` (or decodes twice,
#: reads ``\\`` as ``/``, drops ``;`` parameters, folds fullwidth dots) before resolving them.
ENCODED_TRAVERSALS = [
    "..%2fadmin",
    "..%2Fadmin",
    "%2e%2e%2fadmin",
    "%2E%2E/admin",
    ".%2e/admin",
    "..%5cadmin",
    "..\\admin",
    "..;/admin",
    "..;jsessionid=1/admin",
    "%2e%2e;/admin",
    "..%252fadmin",
    "%252e%252e%252fadmin",
    "%25252e%25252e/admin",
    "%2525252e%2525252e/admin",
    "%ef%bc%8e%ef%bc%8e/admin",
    "..%20/admin",
    "../admin",
]


def test_encoded_dot_segments_are_refused_before_reaching_the_upstream(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    for path in ENCODED_TRAVERSALS:
        answer = send_as_written(proxied, f"/v1/proxy/{auth_id}/echo/{path}")

        problem = assert_problem(answer, 422, "invalid_input")
        assert problem["detail"].startswith("the path "), (path, problem)
        assert "segment" in problem["detail"] or "encoded" in problem["detail"], (path, problem)
    assert [seen.path for seen in proxied.upstream.seen] == []


def test_encoded_separators_without_dot_segments_go_upstream_as_sent(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    path = "echo/group%2Fproject/a..b/...;v=1/100%25/file%252Ename"

    answer = send_as_written(proxied, f"/v1/proxy/{auth_id}/{path}")

    assert answer.status_code == 200, answer.text
    assert [seen.path for seen in proxied.upstream.seen] == [f"/api/{path}"]


# -- rendered rules are reused until the authentication or its configuration changes -----------


def test_changed_credentials_are_used_by_the_next_request(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    assert proxied.call("GET", auth_id, "echo").status_code == 200
    bridge = proxied.api.bridge
    with bridge.session() as session:
        repository = AuthenticationRepository(session, bridge.keyring)
        auth = repository.get_any(auth_id)
        assert auth is not None
        repository.update_credentials(auth, {"api_key": "sk_live_rotated"}, now=bridge.now())

    assert proxied.call("GET", auth_id, "echo").status_code == 200

    first, second = proxied.upstream.seen
    assert first.header("x-api-key") == f"Key {API_KEY}"
    assert second.header("x-api-key") == "Key sk_live_rotated"


def test_a_changed_configuration_is_used_by_the_next_request(proxied: Proxy) -> None:
    bridge = proxied.api.bridge

    def configure(client_id: str) -> None:
        with bridge.session() as session:
            configs = ConnectorConfigRepository(session, bridge.keyring)
            configs.upsert(proxied.api.environment_id, "proxy-client", client_id=client_id)

    configure("client-one")
    auth_id = proxied.api_key_auth("proxy-client")
    assert proxied.call("GET", auth_id, "echo").status_code == 200
    configure("client-two")

    assert proxied.call("GET", auth_id, "echo").status_code == 200

    assert [seen.header("x-client") for seen in proxied.upstream.seen] == [
        "client-one",
        "client-two",
    ]


# -- egress, failures, audit -------------------------------------------------------------------


def test_the_egress_policy_refuses_a_forbidden_address(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    restore = proxied.swap_http(OutboundClient(EgressPolicy(), timeout=5))  # no loopback
    try:
        problem = assert_problem(proxied.call("GET", auth_id, "echo"), 502, "egress_denied")
    finally:
        restore()

    assert "loopback" in problem["detail"]
    assert proxied.upstream.seen == []
    metadata = proxied.api_key_auth("proxy-metadata")
    problem = assert_problem(proxied.call("GET", metadata, "x"), 502, "egress_denied")
    assert "link-local" in problem["detail"]


def test_an_upstream_that_does_not_answer_in_time_is_a_504(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()
    restore = proxied.swap_http(OutboundClient(EgressPolicy(allow_loopback=True), timeout=0.5))
    try:
        answer = proxied.call("GET", auth_id, "slow")
    finally:
        restore()

    problem = assert_problem(answer, 504, "upstream_timeout")
    assert "did not answer in time" in problem["detail"]
    assert audit_events(proxied.api, auth_id, 1)[-1]["detail"]["status"] == 504


def test_an_upstream_that_refuses_connections_is_a_502(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth("proxy-closed")

    problem = assert_problem(proxied.call("GET", auth_id, "x"), 502, "upstream_unreachable")

    assert "could not connect" in problem["detail"]


def test_each_proxied_request_is_audited_without_secrets(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    proxied.call(
        "POST",
        auth_id,
        f"echo/{API_KEY}?q=query-secret",
        content=b"body-secret",
        headers={"X-Header": "header-secret"},
    )

    events = audit_events(proxied.api, auth_id, 1)
    assert len(events) == 1
    detail = events[0]["detail"]
    assert detail["method"] == "POST"
    assert detail["host"] == "127.0.0.1"
    assert detail["path"] == "/api/echo/[redacted]"
    assert detail["status"] == 200
    assert detail["duration_ms"] > 0
    assert events[0]["actor"].startswith("master:")
    text = json.dumps(events)
    for secret in (API_KEY, "query-secret", "body-secret", "header-secret"):
        assert secret not in text


def test_concurrent_requests_each_get_their_audit_row(proxied: Proxy) -> None:
    auth_id = proxied.api_key_auth()

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda n: proxied.call("GET", auth_id, f"echo/{n}"), range(20)))

    assert {answer.status_code for answer in answers} == {200}
    events = audit_events(proxied.api, auth_id, 20)
    paths = sorted(event["detail"]["path"] for event in events)
    assert paths == sorted(f"/api/echo/{n}" for n in range(20))
