"""asyncio TLS termination: a TCP protocol that runs pyOpenSSL and serves an inner protocol.

:class:`TLSServerProtocol` sits on the raw TCP transport, drives a sans-IO
:class:`~certbound.tls.connection.TLSConnection`, and once the handshake has completed
creates the application protocol (aiohttp's ``RequestHandler`` in production) on
top of a :class:`TLSTransport`.  The application protocol never sees a connection
whose handshake failed, and a failing connection only ever affects itself.

With a :class:`~certbound.tls.admission.ConnectionAdmission`, a connection over its
caps is closed as soon as TCP accepts it, before any TLS state is allocated.  A
closed connection unlinks itself from its transport, so reference counting frees
it (and the peer's certificates) at once rather than the next full garbage
collection (issue 9, finding 2).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any, cast

from OpenSSL import SSL

from .admission import AdmissionRefused, AdmittedConnection, ConnectionAdmission
from .connection import TLSConnection, TLSError, TLSHandshakeError
from .peer import TLSInfo

__all__ = ["TLSServerProtocol", "TLSTransport", "start_tls_server"]

_logger = logging.getLogger("certbound.tls")

_Buffer = bytes | bytearray | memoryview


class TLSTransport(asyncio.Transport):
    """The transport the application protocol sees: plaintext in, TLS records out.

    Ciphertext is handed to the TCP transport as soon as it is produced, so write
    buffering and its limits are the TCP transport's, and flow control
    (``pause_writing``/``resume_writing``) is forwarded from it unchanged.

    ``get_extra_info`` adds ``"sslcontext"``, ``"ssl_object"`` (the pyOpenSSL
    connection), ``"peercert"`` (always ``None``), ``"tls_info"``
    (:class:`~certbound.tls.peer.TLSInfo`) and ``"peer_certificates"``
    (:class:`~certbound.tls.peer.PeerCertificates` or ``None``) to what the TCP
    transport answers (``"peername"``, ``"sockname"``, ``"socket"``...).
    """

    __slots__ = ("_closing", "_owner", "_protocol", "_raw", "_raw_write", "_tls", "_tls_extra")

    def __init__(
        self,
        owner: TLSServerProtocol,
        raw: asyncio.Transport,
        tls: TLSConnection,
        info: TLSInfo,
        protocol: asyncio.Protocol,
    ) -> None:
        super().__init__()
        ssl_object = tls.ssl_object
        self._tls_extra: dict[str, object] = {
            "sslcontext": ssl_object.get_context(),
            "ssl_object": ssl_object,
            "peercert": None,
            "tls_info": info,
            "peer_certificates": info.peer,
        }
        self._owner = owner
        self._protocol = protocol
        self._raw = raw
        # Bound once: write() is the hot path.
        self._raw_write = raw.write
        self._tls = tls
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = self._tls_extra
        if name in extra:
            return extra[name]
        return self._raw.get_extra_info(name, default)

    def write(self, data: _Buffer) -> None:
        if self._closing or not data:
            return
        tls = self._tls
        try:
            tls.send(data)
        except TLSError as exc:
            self._owner._fail(exc)
            return
        self._raw_write(tls.data_to_send())

    def writelines(self, list_of_data: Iterable[_Buffer]) -> None:
        # One plaintext buffer means fewer, fuller TLS records than one per item.
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        # TLS has no half-close that HTTP/1.1 relies on; close() sends close_notify.
        return False

    def close(self) -> None:
        """Send close_notify, then close the TCP connection once its buffer is flushed."""
        if self._closing:
            return
        self._closing = True
        tls = self._tls
        tls.start_close()
        outgoing = tls.data_to_send()
        if outgoing:
            self._raw_write(outgoing)
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._raw.abort()

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()

    def is_reading(self) -> bool:
        return self._raw.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits()


class TLSServerProtocol(asyncio.Protocol):
    """Terminates TLS on one TCP connection and serves ``app_protocol_factory()`` over it.

    The application protocol is created only after a successful handshake, and is
    given a :class:`TLSTransport`.  A handshake that fails, or does not complete
    within ``handshake_timeout`` seconds, closes this connection and logs one line
    on the ``certbound.tls`` logger.
    """

    __slots__ = (
        "_admission",
        "_admitted",
        "_app_protocol_factory",
        "_app_transport",
        "_context",
        "_failed",
        "_handshake_timeout",
        "_raw",
        "_timeout_handle",
        "_tls",
        "_writing_paused",
    )

    # Assigned in connection_made(), before asyncio calls anything else.
    _raw: asyncio.Transport
    _tls: TLSConnection

    def __init__(
        self,
        app_protocol_factory: Callable[[], asyncio.Protocol],
        context: SSL.Context,
        *,
        handshake_timeout: float = 10.0,
        admission: ConnectionAdmission | None = None,
    ) -> None:
        self._app_protocol_factory = app_protocol_factory
        self._context = context
        self._handshake_timeout = handshake_timeout
        self._admission = admission
        self._admitted: AdmittedConnection | None = None
        self._app_transport: TLSTransport | None = None
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._writing_paused = False
        # Set once a failure has been logged, so the connection logs a single line.
        self._failed = False

    # -- asyncio.Protocol, called by the TCP transport ------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)
        if self._admission is not None:
            try:
                self._admitted = self._admission.admit(self._peername())
            except AdmissionRefused as exc:
                self._failed = True
                _logger.debug("refused a connection from %s: %s", self._peername(), exc)
                # Closing stops reading at once: data_received is never called.
                self._raw.abort()
                return
        self._tls = TLSConnection(self._context)
        self._timeout_handle = asyncio.get_running_loop().call_later(
            self._handshake_timeout, self._handshake_timed_out
        )

    def data_received(self, data: bytes) -> None:
        tls = self._tls
        try:
            handshake_completed, plaintext, closed = tls.receive_data(data)
        except TLSError as exc:
            self._fail(exc)
            return
        app_transport = self._app_transport
        if app_transport is None or handshake_completed or closed or not plaintext:
            # Handshake flights, session tickets, alerts, and answers to records that carried no
            # application data (a TLS 1.3 KeyUpdate). Reading application data queues nothing that
            # cannot wait for our next write, so the hot path skips a BIO read that would end in
            # WantReadError.
            outgoing = tls.data_to_send()
            if outgoing:
                self._raw.write(outgoing)
        if handshake_completed:
            self._start_application()
            app_transport = self._app_transport
        # Nothing is delivered once the application (or a failure) closed the transport.
        if app_transport is None or app_transport._closing:
            return
        if plaintext:
            app_transport._protocol.data_received(plaintext)
        if closed and not app_transport._closing:
            self._peer_closed(app_transport)

    def eof_received(self) -> bool:
        # The peer closed TCP without close_notify: treat it like close_notify.
        # Returning False lets the TCP transport close itself if we did not already.
        app_transport = self._app_transport
        if app_transport is not None and not app_transport._closing:
            self._peer_closed(app_transport)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
            self._timeout_handle = None
        if self._admitted is not None:
            self._admitted.close()
            self._admitted = None
        app_transport = self._app_transport
        if app_transport is not None:
            # The transport keeps its owner; the owner lets go of the transport, which breaks
            # the cycle between them.
            self._app_transport = None
            app_transport._closing = True
            app_transport._protocol.connection_lost(exc)
        elif not self._failed:
            self._failed = True
            _logger.debug(
                "TLS connection from %s closed before the handshake completed%s",
                self._peername(),
                f": {exc}" if exc is not None else "",
            )

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._app_transport is not None:
            self._app_transport._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._app_transport is not None:
            self._app_transport._protocol.resume_writing()

    # -- internals ----------------------------------------------------------------

    def _start_application(self) -> None:
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
            self._timeout_handle = None
        if self._admitted is not None:
            self._admitted.handshake_done()
        tls = self._tls
        app_protocol = self._app_protocol_factory()
        app_transport = TLSTransport(self, self._raw, tls, cast(TLSInfo, tls.info), app_protocol)
        self._app_transport = app_transport
        app_protocol.connection_made(app_transport)
        # The handshake flight may already have filled the TCP buffer; the
        # application must start from the same flow-control state.
        if self._writing_paused and not app_transport._closing:
            app_protocol.pause_writing()

    def _peer_closed(self, app_transport: TLSTransport) -> None:
        # Same as asyncio's own SSL transport: tell the application, then shut down
        # whatever it answers (keeping a half-closed TLS connection open is not
        # something HTTP/1.1 needs).
        app_transport._protocol.eof_received()
        app_transport.close()

    def _fail(self, exc: TLSError) -> None:
        """Log one line, send any alert OpenSSL queued, and close the connection."""
        raw = self._raw
        if not self._failed:
            self._failed = True
            what = "handshake failed" if isinstance(exc, TLSHandshakeError) else "error"
            _logger.debug("TLS %s for %s: %s", what, self._peername(), exc)
        if self._app_transport is not None:
            self._app_transport._closing = True
        outgoing = self._tls.data_to_send()
        if outgoing:
            raw.write(outgoing)
        raw.close()

    def _handshake_timed_out(self) -> None:
        self._timeout_handle = None
        self._failed = True
        _logger.debug(
            "TLS handshake from %s timed out after %.1f s",
            self._peername(),
            self._handshake_timeout,
        )
        self._raw.abort()

    def _peername(self) -> object:
        return self._raw.get_extra_info("peername")


async def start_tls_server(
    app_protocol_factory: Callable[[], asyncio.Protocol],
    context: SSL.Context | Callable[[], SSL.Context],
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    handshake_timeout: float = 10.0,
    backlog: int = 1024,
    reuse_port: bool = False,
    admission: ConnectionAdmission | None = None,
) -> asyncio.Server:
    """Listen on ``host:port`` (or on an already bound ``sock``) and serve
    ``app_protocol_factory()`` protocols over TLS.

    ``context`` is either a fixed context or a zero-argument callable returning
    the context to use; the callable is invoked for every new connection, so a
    reloaded context applies to new connections while live ones keep theirs.
    (If it raises, asyncio logs the error and drops that one connection, so it
    should keep returning the last good context when a reload fails.)
    Listeners sharing one ``admission`` share its caps.
    """

    def protocol_factory() -> TLSServerProtocol:
        ctx = context if isinstance(context, SSL.Context) else context()
        return TLSServerProtocol(
            app_protocol_factory, ctx, handshake_timeout=handshake_timeout, admission=admission
        )

    loop = asyncio.get_running_loop()
    if sock is not None:
        return await loop.create_server(protocol_factory, sock=sock, backlog=backlog)
    if port is None:
        raise ValueError("start_tls_server needs a port or a bound socket")
    return await loop.create_server(protocol_factory, host, port, backlog=backlog, reuse_port=reuse_port)
