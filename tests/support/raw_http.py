"""HTTP/1.1 by hand over a socket, for what no client library sends: a head without its body,
a body trickled or cut off, headers never finished.

``connect(base_url)`` opens a connection; ``head(...)`` builds a request line and headers;
``read_response(sock)`` reads one answer (status, headers, body as ``Content-Length`` says) or
raises :class:`Closed` when the server closed the connection first, or ``TimeoutError``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


class Closed(Exception):
    """The server closed the connection without (the rest of) an answer."""


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def connect(base_url: str, timeout: float = 10.0) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout)
    sock.settimeout(timeout)
    return sock


def head(method: str, path: str, headers: Mapping[str, str] | None = None) -> bytes:
    """The request line and headers (``Host`` added), ending with the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def read_response(sock: socket.socket, timeout: float = 10.0) -> RawResponse:
    """One answer from ``sock`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        data += _receive(sock, deadline)
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += _receive(sock, deadline)
    return RawResponse(int(status_line.split()[1]), headers, body[:length])


def closed_within(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` seconds (what it sends meanwhile
    is read and dropped)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            _receive(sock, deadline)
    except Closed:
        return True
    except TimeoutError:
        return False


def _receive(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no answer in time")
    sock.settimeout(left)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        raise Closed("the server reset the connection") from None
    except TimeoutError:
        raise TimeoutError("no answer in time") from None
    if not data:
        raise Closed("the server closed the connection")
    return data
