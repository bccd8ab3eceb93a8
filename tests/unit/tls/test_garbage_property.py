"""Property tests: the TLS layer fed random records and garbage (issue 9). Whatever arrives, the
sans-IO connection either proceeds or raises TLSError, the asyncio protocol either keeps the
connection or closes it (never an exception into the event loop), and the server keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from certbound.tls import TLSConnection, TLSError, TLSServerProtocol, start_tls_server

from .conftest import ConnectionPair, Pki, client_context

_EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_CONTENT_TYPES = st.one_of(st.sampled_from([20, 21, 22, 23, 24]), st.integers(0, 255))
_VERSIONS = st.one_of(st.sampled_from([0x0301, 0x0303, 0x0304]), st.integers(0, 0xFFFF))


@st.composite
def _record(draw: st.DrawFn) -> bytes:
    """A TLS record header (plausible or not) and a payload whose length may not match it."""
    payload = draw(st.binary(max_size=300))
    declared = draw(st.one_of(st.just(len(payload)), st.integers(0, 0xFFFF)))
    return struct.pack("!BHH", draw(_CONTENT_TYPES), draw(_VERSIONS), declared) + payload


_GARBAGE = st.lists(st.one_of(_record(), st.binary(min_size=1, max_size=600)), min_size=1, max_size=6)


def _client_hello(pki: Pki, version: int = SSL.TLS1_3_VERSION) -> bytes:
    client = SSL.Connection(client_context(pki, max_version=version), None)
    client.set_connect_state()
    with contextlib.suppress(SSL.WantReadError):
        client.do_handshake()
    return client.bio_read(65536)


def _feed(server: TLSConnection, chunks: list[bytes]) -> None:
    """Deliver chunks until the connection fails with TLSError (its only failure) or they run out."""
    for chunk in chunks:
        try:
            completed, plaintext, closed = server.receive_data(chunk)
        except TLSError:
            assert isinstance(server.data_to_send(), bytes)
            return
        assert isinstance(plaintext, bytes)
        assert isinstance(completed, bool)
        assert isinstance(closed, bool)
        assert isinstance(server.data_to_send(), bytes)


@_EXAMPLES
@given(chunks=_GARBAGE)
def test_garbage_before_the_handshake(server_context: SSL.Context, chunks: list[bytes]) -> None:
    _feed(TLSConnection(server_context), chunks)


@_EXAMPLES
@given(
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(1, 10_000),
    version=st.sampled_from([SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION]),
)
def test_a_mutated_client_hello(
    pki: Pki, server_context: SSL.Context, flips: list[tuple[int, int]], cut: int, version: int
) -> None:
    hello = bytearray(_client_hello(pki, version))
    for position, value in flips:
        hello[position % len(hello)] = value
    _feed(TLSConnection(server_context), [bytes(hello[:cut]), bytes(hello[cut:])])


@_EXAMPLES
@given(chunks=_GARBAGE, version=st.sampled_from([SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION]))
def test_garbage_after_the_handshake(
    pki: Pki, server_context: SSL.Context, chunks: list[bytes], version: int
) -> None:
    pair = ConnectionPair(server_context, client_context(pki, pki.chained, max_version=version))
    pair.handshake()
    _feed(pair.server, chunks)


class _RawTransport(asyncio.Transport):
    """The TCP transport's part, in memory: records what the protocol writes and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.1", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _protocol_fed(server_context: SSL.Context, chunks: list[bytes]) -> _RawTransport:
    async def run() -> _RawTransport:
        def no_application() -> asyncio.Protocol:
            raise AssertionError("garbage completed a handshake")

        protocol = TLSServerProtocol(no_application, server_context)
        raw = _RawTransport()
        protocol.connection_made(raw)
        for chunk in chunks:
            if raw.closed:
                break
            protocol.data_received(chunk)  # raising here would reach the event loop
        protocol.connection_lost(None)
        return raw

    return asyncio.run(run())


@_EXAMPLES
@given(chunks=_GARBAGE)
def test_the_protocol_keeps_or_closes_the_connection(
    server_context: SSL.Context, chunks: list[bytes]
) -> None:
    raw = _protocol_fed(server_context, chunks)
    assert isinstance(raw.written, bytearray)


def _send_garbage(port: int, chunks: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                return  # closed by the server: fine
        sock.settimeout(0.05)
        with contextlib.suppress(OSError):  # closed, reset, or still waiting for more
            sock.recv(65536)


@pytest.fixture
async def port(server_context: SSL.Context) -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    server = await start_tls_server(runner.server, server_context, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await runner.cleanup()


def _hello(pki: Pki, port: int) -> bytes:
    context = ssl.create_default_context(cafile=str(pki.server_ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return tls.recv(65536)


async def test_garbage_over_real_sockets_leaves_the_server_serving(
    pki: Pki, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    @settings(max_examples=25, deadline=None)
    @given(chunks=_GARBAGE)
    def send(chunks: list[bytes]) -> None:
        _send_garbage(port, chunks)

    await asyncio.to_thread(send)
    assert (await asyncio.to_thread(_hello, pki, port)).startswith(b"HTTP/1.1 200")
    # Nothing reached the event loop's exception handler (or any other warning).
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []
