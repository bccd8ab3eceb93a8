"""aiohttp's request handler plus the slow-client rules of SPEC §10 and issue 9, SPEC §3's drain, and
the connection caps of issue 9 as the settings give them.

- Request headers must arrive within `header_timeout` seconds of their first byte (slowloris), and
  the whole request, body included, within `request_timeout` seconds of it (a stalled body,
  issue 9 finding 6): a request still incomplete then is answered 408 if its handler is waiting
  for the body and has written nothing yet, and its connection closed either way. Both apply to
  every request of a keep-alive connection; idle keep-alive connections are closed by aiohttp's
  own keepalive timeout.
- On shutdown a request whose headers were read is in flight (SPEC §3): its body is still read and
  it is answered (within the drain timeout) before the connection closes (issue 9, finding 16).
  aiohttp would stop reading at once, leaving such a request waiting for a body it drops.

It relies on attributes of aiohttp's RequestHandler: `_request_count` (requests parsed),
`_messages` (parsed, not yet handled), `_request_in_progress`, `_current_request`,
`_lingering_time`, and on `close()` being what aiohttp's shutdown calls first.
tests/unit/test_httpguard.py pins that behaviour so an aiohttp upgrade that changes it fails loudly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "GuardedRequestHandler",
    "handler_factory",
]

#: SPEC §10's deadlines (`--header-timeout`, `--request-timeout`, `--keepalive-timeout`).
DEFAULT_HEADER_TIMEOUT = 10
DEFAULT_REQUEST_TIMEOUT = 30
DEFAULT_KEEPALIVE_TIMEOUT = 60

log = logging.getLogger("certbound.http")


class GuardedRequestHandler(RequestHandler):
    """One connection's aiohttp handler with deadlines on slow requests and an answering drain."""

    # aiohttp's handler has slots: without ours every connection would carry a __dict__ too.
    __slots__ = (
        "_answered",
        "_body",
        "_close_when_answered",
        "_header_deadline",
        "_header_timeout",
        "_receiving_body",
        "_request_deadline",
        "_request_timeout",
    )

    def __init__(
        self, manager: web.Server, *, header_timeout: float, request_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._request_timeout = request_timeout
        self._header_deadline = _Deadline()
        self._request_deadline = _Deadline()
        # The body of the newest request whose headers were parsed, and whether it was still
        # arriving when last seen.
        self._body: StreamReader | None = None
        self._receiving_body = False
        # Shutdown was asked for while a request was in flight: close once it is answered.
        self._close_when_answered = False
        self._answered: asyncio.Future[None] | None = None

    # -- deadlines -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        headers_done = self._request_count != parsed and bool(self._messages)
        if headers_done:
            self._body = self._messages[-1][1]
            self._header_deadline.stop()
        body = self._body
        if body is not None and not body.is_eof():
            self._receiving_body = True
            self._request_deadline.arm(self._loop, self._request_timeout, self._request_too_slow)
        elif headers_done or self._receiving_body:
            # A request is complete (its body arrived with its headers, or just now).
            self._receiving_body = False
            self._request_deadline.stop()
        elif data:  # (aiohttp calls this with b"" to reparse what it buffered)
            # The first bytes of a request, or more of its headers.
            self._header_deadline.arm(self._loop, self._header_timeout, self._headers_too_slow)
            self._request_deadline.arm(self._loop, self._request_timeout, self._request_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_deadline.stop()
        log.info("closing a connection whose request headers took over %ss", self._header_timeout)
        self._close_transport()

    def _request_too_slow(self) -> None:
        self._request_deadline.stop()
        log.info("closing a connection whose request took over %ss", self._request_timeout)
        body = self._body
        request = self._current_request
        if (
            self._receiving_body
            and body is not None
            and request is not None
            and request.content is body
            and request.writer.output_size == 0
        ):
            # The handler answers 408 if it is reading the body (aiohttp turns the exception into
            # the response), or whatever it meant to; then aiohttp closes the connection rather
            # than wait for the rest of the body.
            self._lingering_time = 0.0
            timeout = web.HTTPRequestTimeout(text="the request took too long to arrive")
            timeout.force_close()
            body.set_exception(timeout)
            return
        self._close_transport()

    def _close_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A request aiohttp's parser refused (a malformed header, a repeated Host...) is the
        peer's mistake, answered 400: one line, not a traceback per attempt in the log."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            peer = self.transport.get_extra_info("peername") if self.transport is not None else None
            log.info("refused a malformed request from %s: %s", peer[0] if peer else "?", exc.message)
            return
        super().log_exception(*args, **kwargs)

    # -- drain ---------------------------------------------------------------------

    def _in_flight(self) -> bool:
        """A request whose headers were read and which is not answered yet (SPEC §3)."""
        return self._request_in_progress or bool(self._messages)

    def close(self) -> None:
        """Close once the requests in flight are answered; aiohttp's close() would stop reading
        their bodies. (aiohttp calls this on shutdown, and after a request whose body was left
        unread, when nothing is in flight any more.)"""
        if self._in_flight():
            self._close_when_answered = True
            return
        super().close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 (aiohttp's signature)
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        while self._in_flight() and not self._force_close:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            self._answered = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._answered), remaining)
            except TimeoutError:
                break
        remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
        await super().shutdown(remaining)

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            if self._close_when_answered and not self._messages:
                super().close()
            self._wake_shutdown()

    def _wake_shutdown(self) -> None:
        answered = self._answered
        if answered is not None and not answered.done():
            answered.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._header_deadline.stop()
        self._request_deadline.stop()
        self._body = None
        super().connection_lost(exc)
        self._wake_shutdown()


class _Deadline:
    """One timer: armed once, until it fires or is stopped."""

    __slots__ = ("_handle",)

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None

    def arm(self, loop: asyncio.AbstractEventLoop, delay: float, callback: Callable[[], None]) -> None:
        if self._handle is None:
            self._handle = loop.call_later(delay, callback)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def handler_factory(
    server: web.Server,
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
) -> Callable[[], GuardedRequestHandler]:
    """A protocol factory for the TLS layer: one guarded handler per connection, with these
    header, request and keep-alive timeouts (`serve` passes its settings; the resource server
    helper its own)."""
    loop = asyncio.get_running_loop()

    def create() -> GuardedRequestHandler:
        return GuardedRequestHandler(
            server,
            loop=loop,
            header_timeout=header_timeout,
            request_timeout=request_timeout,
            keepalive_timeout=keepalive_timeout,
            access_log=None,
        )

    return create
