"""What ``authbridge serve`` allows a connection: time to send a request, and company.

uvicorn times out only idle keep-alive connections: a client that sends half its headers, or
trickles a body a byte a second, holds its connection (and the request's task) for as long as it
likes, and there is no bound on connections. :class:`GuardedProtocol` is uvicorn's httptools
protocol with those bounds (:class:`ConnectionLimits`, from :class:`~authbridge.runtime.Settings`):

* **Headers**: a request's line and headers must have arrived ``header_timeout`` seconds after
  its first byte, and be at most :data:`MAX_HEAD` bytes (431 beyond, as h11 would). A new
  connection that sends nothing for ``header_timeout`` seconds is closed without an answer.
* **Body**: ``body_timeout`` seconds after the headers, plus one second per
  :data:`MIN_BODY_RATE` bytes received, so that a large upload at a modest rate goes through.
  Time during which the app has not read what arrived (uvicorn stops reading then) does not
  count against the client. A body still arriving after its request was answered (a 413, a 401
  before reading) is read and dropped for at most :data:`LINGER` seconds more; the connection
  is closed then, or when the body is complete.
* **Connections**: beyond ``max_connections`` open at once, a new connection is answered 503 and
  closed before anything is read (a warning at most once a minute says so).

A timeout is answered 408 with a problem document (when no answer had started) and the
connection closed; the app, if it was waiting for the body, sees the client disconnect. A
connection has one timer, which fires at least every ``header_timeout`` seconds and looks at
what the connection is doing: a request only sets its phase, with no timer of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from authbridge.errors import AuthBridgeError, HeadersTooLarge, RequestTimeout, TooManyConnections

log = logging.getLogger("authbridge.api")

#: The most bytes of a request line and headers (h11, uvicorn's other parser, allows 16 KiB).
MAX_HEAD = 64 * 1024
#: A body's deadline moves one second later for every this many bytes received.
MIN_BODY_RATE = 64 * 1024
#: How long a body is still read after its request was answered.
LINGER = 5.0
#: Seconds between two warnings that connections were refused.
WARN_EVERY = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    """``serve``'s bounds on one connection (seconds) and on their number (their defaults are
    :class:`~authbridge.runtime.Settings`')."""

    header_timeout: float
    body_timeout: float
    max_connections: int


# What a connection is doing. Plain ints, and the base class's methods called directly rather
# than through super(): on Python 3.11 Enum members and super() made the checks cost a request
# about 3 us instead of 1.
_OPENED = 0  # connected, nothing received yet
_IDLE = 1  # between requests: uvicorn's keep-alive timeout applies
_HEAD = 2  # the request line and headers are arriving
_BODY = 3  # the body is arriving
_LINGER = 4  # the body of an answered request is arriving
_Base = HttpToolsProtocol


def _answer(error: AuthBridgeError, **headers: str) -> bytes:
    """``error`` as a whole HTTP answer: a problem document, as the app's would be, and
    ``connection: close``."""
    title = HTTPStatus(error.status).phrase
    body = json.dumps(
        {
            "type": f"https://authbridge.dev/problems/{error.code}",
            "title": title,
            "status": error.status,
            "detail": error.message,
            "code": error.code,
        }
    ).encode()
    lines = [
        f"HTTP/1.1 {error.status} {title}",
        "content-type: application/problem+json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


_TOO_MANY = _answer(
    TooManyConnections(
        "the server holds as many connections as it may (AUTHBRIDGE_MAX_CONNECTIONS); "
        "try again shortly"
    ),
    retry_after=str(TooManyConnections.retry_after),
)
_HEAD_TOO_LARGE = _answer(
    HeadersTooLarge(f"the request line and headers may take at most {MAX_HEAD // 1024} KiB")
)


class _Refusals:
    """When the last warning about refused connections was logged, and how many since."""

    warned_at = float("-inf")
    count = 0

    @classmethod
    def note(cls) -> None:
        cls.count += 1
        now = time.monotonic()
        if now - cls.warned_at >= WARN_EVERY:
            log.warning(
                "refused %d connection(s): %s",
                cls.count,
                "the server holds AUTHBRIDGE_MAX_CONNECTIONS already",
            )
            cls.warned_at, cls.count = now, 0


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of the module's docstring.

    Each connection has one timer, which looks at what the connection is doing (its phase and
    since when) whenever it fires, at least every ``header_timeout`` seconds: a request costs
    setting the phase at its first byte, at its headers' end and at its end, no timer.
    """

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._timer: asyncio.TimerHandle | None = None
        self._phase = _OPENED
        self._since = 0.0  # when the phase began (the loop's clock)
        self._head_bytes = 0
        self._body_bytes = 0
        self._refused = False

    # --- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            transport.write(_TOO_MANY)
            transport.close()
            _Refusals.note()
            return
        super().connection_made(transport)
        self._since = self.loop.time()
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        in_head = self._phase == _HEAD
        _Base.data_received(self, data)
        # Only what arrived wholly inside one head is counted (a chunk that began or ended it
        # held a body or the last request's tail too): one chunk may slip through uncounted.
        if in_head and self._phase == _HEAD:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD and not self.transport.is_closing():
                self.transport.write(_HEAD_TOO_LARGE)
                self.transport.close()

    # --- the parser's callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        _Base.on_message_begin(self)
        self._phase = _HEAD
        self._since = self.loop.time()
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._since = self.loop.time()
        self._body_bytes = 0
        _Base.on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        _Base.on_body(self, body)

    def on_message_complete(self) -> None:
        lingered = self._phase == _LINGER
        self._phase = _IDLE
        _Base.on_message_complete(self)
        if lingered:  # uvicorn's keep-alive timer went with the body's bytes: end here
            self.transport.close()

    def on_response_complete(self) -> None:
        _Base.on_response_complete(self)
        if self._phase == _BODY:  # answered before its body arrived: drop the rest
            self._phase = _LINGER
            self._since = self.loop.time()
            if self._timer is not None:
                self._timer.cancel()
            self._arm(LINGER)

    # --- the timer ---------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        # Never later than a header timeout: a request may begin at any moment.
        self._timer = self.loop.call_later(min(seconds, self.limits.header_timeout), self._check)

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now, phase, limits = self.loop.time(), self._phase, self.limits
        left = limits.header_timeout
        if phase in (_OPENED, _HEAD):
            left = self._since + limits.header_timeout - now
            if left <= 0 and phase == _OPENED:  # nothing asked: a browser's spare one
                self.transport.close()
                return
            if left <= 0:
                self._time_out("the request's headers did not arrive in time")
                return
        elif phase == _BODY:
            if self.flow.read_paused:  # the app has not read what came: not the client's fault
                self._since = now
            allowed = limits.body_timeout + self._body_bytes / MIN_BODY_RATE
            left = self._since + allowed - now
            if left <= 0:
                self._time_out("the request's body did not arrive in time")
                return
        elif phase == _LINGER:
            left = self._since + LINGER - now
            if left <= 0:
                self.transport.close()
                return
        self._arm(left)

    def _time_out(self, detail: str) -> None:
        """Answer 408 (unless an answer has started) and close; a waiting app sees the client
        disconnect."""
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if not answering or not cycle.response_started:
            self.transport.write(_answer(RequestTimeout(detail)))
        if cycle is not None and answering:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
