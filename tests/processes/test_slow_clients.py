"""``authbridge serve`` times out slow clients and bounds its connections (SQLite).

One server, started with short limits through the settings (``AUTHBRIDGE_HEADER_TIMEOUT_SECONDS``,
``AUTHBRIDGE_BODY_TIMEOUT_SECONDS``, ``AUTHBRIDGE_MAX_CONNECTIONS``,
``AUTHBRIDGE_PROXY_MAX_BODY_BYTES``), is sent what slow or hostile clients send, by hand over
sockets: half a request's headers, a body a byte at a time, more connections than allowed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from authbridge.serving import LINGER
from tests.processes.conftest import deployment
from tests.support.processes import Process
from tests.support.raw_http import Closed, closed_within, connect, head, read_response

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 8
PROXY_MAX_BODY = 1000
LIMITS = {
    "AUTHBRIDGE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "AUTHBRIDGE_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "AUTHBRIDGE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "AUTHBRIDGE_PROXY_MAX_BODY_BYTES": str(PROXY_MAX_BODY),
}
#: What a loaded machine may add to a timeout before the server acts on it.
SLACK = 3.0
JSON = {"Content-Type": "application/json"}


@dataclass
class Served:
    server: Process
    token: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with deployment(tmp_path_factory.mktemp("slow-clients")) as deployed:
        server = deployed.processes.server(
            {**deployed.environ, **LIMITS}, connectors=[deployed.connectors]
        )
        server.start()
        yield Served(server, deployed.master_token)


def assert_timed_out(sock: socket.socket, within: float, what: str) -> None:
    started = time.monotonic()
    answer = read_response(sock, timeout=within + SLACK)
    assert answer.status == 408, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert json.loads(answer.body)["code"] == "request_timeout"
    assert what in json.loads(answer.body)["detail"]
    assert closed_within(sock, 2)
    assert time.monotonic() - started < within + SLACK


def test_half_sent_headers_are_answered_408_and_closed(served: Served) -> None:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(connect(served.url)) for _ in range(5)]
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for sock in socks:
            assert_timed_out(sock, HEADER_TIMEOUT, "headers")
    assert httpx.get(served.url + "/healthz", timeout=5).status_code == 200


def test_headers_trickled_a_byte_at_a_time_are_timed_out_too(served: Served) -> None:
    request = head("GET", "/healthz")
    with connect(served.url) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server may close while we are still writing
            for byte in request[:-2]:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - started > HEADER_TIMEOUT + SLACK:
                    break
        assert_timed_out(sock, HEADER_TIMEOUT, "headers")


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(served: Served) -> None:
    with connect(served.url) as sock, pytest.raises(Closed):
        read_response(sock, timeout=HEADER_TIMEOUT + SLACK)


def test_a_body_trickled_a_byte_at_a_time_is_answered_408_and_closed(served: Served) -> None:
    headers = JSON | {"Authorization": f"Bearer {served.token}", "Content-Length": "100"}
    with connect(served.url) as sock:
        sock.sendall(head("POST", "/v1/master-tokens", headers) + b'{"name": "slow')
        started = time.monotonic()
        answer = None
        while answer is None and time.monotonic() - started < BODY_TIMEOUT + SLACK:
            with contextlib.suppress(OSError):  # the server may have closed meanwhile
                sock.sendall(b"w")
            with contextlib.suppress(TimeoutError):
                answer = read_response(sock, timeout=0.5)
        assert answer is not None, "the trickled body was kept"
        assert answer.status == 408, answer.text
        assert "body" in json.loads(answer.body)["detail"]
        assert closed_within(sock, 2)
    names = httpx.get(
        served.url + "/v1/master-tokens",
        headers={"Authorization": f"Bearer {served.token}"},
        timeout=5,
    ).json()
    assert not any(item["name"].startswith("slow") for item in names)


def test_a_body_still_coming_after_its_answer_is_dropped_within_the_linger(
    served: Served,
) -> None:
    headers = JSON | {"Content-Length": "100000"}  # no token: answered 401 before the body
    with connect(served.url) as sock:
        sock.sendall(head("POST", "/v1/master-tokens", headers))
        answer = read_response(sock, timeout=5)
        assert answer.status == 401
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while time.monotonic() - started < LINGER + SLACK:
                sock.sendall(b"x" * 100)
                time.sleep(0.2)
        assert closed_within(sock, 1)
        assert time.monotonic() - started < LINGER + SLACK + 1


def test_headers_beyond_64_kib_are_answered_431(served: Served) -> None:
    with connect(served.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(OSError):
            for number in range(200):
                sock.sendall(f"X-Filler-{number}: {'f' * 1000}\r\n".encode())
        answer = read_response(sock, timeout=5)
    assert answer.status == 431
    assert json.loads(answer.body)["code"] == "headers_too_large"


def test_connections_beyond_the_bound_are_answered_503_until_one_closes(
    served: Served,
) -> None:
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(MAX_CONNECTIONS):  # kept alive after one request each
            sock = stack.enter_context(connect(served.url))
            sock.sendall(head("GET", "/healthz"))
            assert read_response(sock).status == 200
            held.append(sock)
        with connect(served.url) as extra:
            refused = read_response(extra, timeout=5)
            assert refused.status == 503
            assert refused.headers["retry-after"] == "1"
            assert json.loads(refused.body)["code"] == "too_many_connections"
            assert closed_within(extra, 2)
        held.pop().close()
        time.sleep(0.2)
        with connect(served.url) as sock:
            sock.sendall(head("GET", "/healthz"))
            assert read_response(sock).status == 200


def test_a_proxied_body_beyond_the_configured_limit_is_refused(served: Served) -> None:
    auth = {"Authorization": f"Bearer {served.token}"}
    too_large = httpx.post(
        served.url + "/v1/proxy/some-auth/upload",
        content=b"x" * (PROXY_MAX_BODY + 1),
        headers=auth,
        timeout=5,
    )
    assert too_large.status_code == 413, too_large.text
    assert "1,000 bytes" in too_large.json()["detail"]
    within = httpx.post(
        served.url + "/v1/proxy/some-auth/upload",
        content=b"x" * PROXY_MAX_BODY,
        headers=auth,
        timeout=5,
    )
    assert within.status_code == 404, within.text  # past the limit: no such authentication


def test_serve_with_several_workers_times_out_slow_clients_too(tmp_path: Path) -> None:
    with deployment(tmp_path) as deployed:
        server = deployed.processes.server(
            {**deployed.environ, **LIMITS},
            connectors=[deployed.connectors],
            extra_args=["--workers", "2"],
        )
        server.start()
        with connect(server.url) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert_timed_out(sock, HEADER_TIMEOUT, "headers")
