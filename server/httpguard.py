"""aiohttp's request handler plus SPEC §10's slow-client rule: request headers must arrive within
`header_timeout` seconds of their first byte (slowloris), on every request of a keep-alive
connection. Idle keep-alive connections are closed by aiohttp's own keepalive timeout.

It relies on two attributes of aiohttp's RequestHandler (`_current_request`, `_messages`): the
handler is "between requests" when neither holds anything. tests/unit/test_httpguard.py pins that
behaviour so an aiohttp upgrade that changes it fails loudly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

__all__ = ["HeaderDeadlineHandler", "handler_factory"]

log = logging.getLogger("certbound.http")


class HeaderDeadlineHandler(RequestHandler):
    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def _between_requests(self) -> bool:
        return self._current_request is None and not self._messages

    def data_received(self, data: bytes) -> None:
        arm = self._header_deadline is None and self._between_requests()
        super().data_received(data)
        if not self._between_requests():
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None
        elif arm:
            self._header_deadline = self._loop.call_later(self._header_timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        log.info("closing a connection whose request headers took over %ss", self._header_timeout)
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

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)


def handler_factory(
    server: web.Server, *, header_timeout: float, keepalive_timeout: float
) -> Callable[[], HeaderDeadlineHandler]:
    """A protocol factory for the TLS layer: one guarded handler per connection."""
    loop = asyncio.get_running_loop()

    def create() -> HeaderDeadlineHandler:
        return HeaderDeadlineHandler(
            server,
            loop=loop,
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
            access_log=None,
        )

    return create
