"""End-to-end tests of start_tls_server: real sockets, a real aiohttp app, stdlib/aiohttp clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import json
import logging
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web, web_protocol
from OpenSSL import SSL

from certbound.tls import (
    ConnectionAdmission,
    ConnectionLimits,
    PeerCertificates,
    TLSInfo,
    TLSServerProtocol,
    TLSTransport,
    build_server_context,
    start_tls_server,
)
from certbound.tls.policy import MAX_INTERMEDIATES
from tests.unit.pki.builders import ca_name, issue, make_ca, name

from .conftest import ClientIdentity, Pki

_BIG = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB
_UPLOAD = hashlib.sha256(b"seed").digest() * (2 * 1024 * 1024 // 32)  # 2 MiB


async def _peer(request: web.Request) -> web.Response:
    transport = request.transport
    assert transport is not None
    info: TLSInfo = transport.get_extra_info("tls_info")
    peer: PeerCertificates | None = transport.get_extra_info("peer_certificates")
    return web.json_response(
        {
            "scheme": request.scheme,
            "transport": id(transport),
            "peer_port": transport.get_extra_info("peername")[1],
            "tls_info": id(info),
            "version": info.version,
            "alpn": info.alpn,
            "resumed": info.resumed,
            "sslcontext": isinstance(transport.get_extra_info("sslcontext"), SSL.Context),
            "ssl_object": isinstance(transport.get_extra_info("ssl_object"), SSL.Connection),
            "socket": transport.get_extra_info("socket") is not None,
            "peer": None
            if peer is None
            else {
                "leaf": peer.leaf.subject.rfc4514_string(),
                "chain": [cert.subject.rfc4514_string() for cert in peer.chain],
                "x5t_s256": peer.x5t_s256,
            },
        }
    )


async def _big(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    assert transport is not None
    # A small kernel send buffer makes the TCP transport buffer, and so pause us.
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    response = web.StreamResponse()
    response.content_length = len(_BIG)
    await response.prepare(request)
    view = memoryview(_BIG)
    for start in range(0, len(_BIG), 65536):
        await response.write(view[start : start + 65536])
    await response.write_eof()
    return response


async def _upload(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})


def _app() -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_get("/peer", _peer)
    app.router.add_get("/big", _big)
    app.router.add_post("/upload", _upload)
    return app


StartServer = Callable[..., Awaitable[int]]


@pytest.fixture
async def start_server(server_context: SSL.Context) -> AsyncIterator[StartServer]:
    started: list[tuple[web.AppRunner, asyncio.Server]] = []

    async def start(
        context: SSL.Context | Callable[[], SSL.Context] = server_context,
        handshake_timeout: float = 10.0,
        admission: ConnectionAdmission | None = None,
    ) -> int:
        runner = web.AppRunner(_app(), access_log=None)
        await runner.setup()
        assert runner.server is not None
        server = await start_tls_server(
            runner.server,
            context,
            "127.0.0.1",
            0,
            handshake_timeout=handshake_timeout,
            admission=admission,
        )
        started.append((runner, server))
        return int(server.sockets[0].getsockname()[1])

    yield start
    for runner, server in started:
        server.close()
        await runner.cleanup()
        await server.wait_closed()


@pytest.fixture
async def port(start_server: StartServer) -> int:
    return await start_server()


@pytest.fixture
def tls_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="certbound.tls")
    return caplog


def _client_context(
    pki: Pki,
    identity: ClientIdentity | None = None,
    *,
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pki.server_ca.configure_trust(ctx)
    ctx.maximum_version = max_version
    if identity is not None:
        ctx.load_cert_chain(identity.chain_file, identity.key_file)
    return ctx


async def _get_json(ctx: ssl.SSLContext, port: int, path: str = "/peer") -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(f"https://127.0.0.1:{port}{path}") as response,
    ):
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


@dataclass
class _Exchange:
    status: int
    body: dict[str, Any]
    session: ssl.SSLSession | None
    session_reused: bool
    alpn: str | None


def _exchange(
    ctx: ssl.SSLContext,
    port: int,
    *,
    session: ssl.SSLSession | None = None,
) -> _Exchange:
    """Blocking ``GET /peer`` with ``Connection: close``; asserts a clean close_notify."""
    # suppress_ragged_eofs=False: a TCP close without close_notify raises
    # SSLEOFError instead of reading as a clean end of stream.
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost", session=session, suppress_ragged_eofs=False) as tls,
    ):
        tls.sendall(b"GET /peer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        return _Exchange(
            status=int(head.split(b" ", 2)[1]),
            body=json.loads(body),
            session=tls.session,
            session_reused=bool(tls.session_reused),
            alpn=tls.selected_alpn_protocol(),
        )


async def _wait_for_log(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    for _ in range(100):
        records = [r for r in caplog.records if r.name == "certbound.tls"]
        if len(records) >= count:
            return records
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} certbound.tls log records, got {caplog.records}")


def _assert_quiet_failure(records: list[logging.LogRecord], caplog: pytest.LogCaptureFixture) -> None:
    assert len(records) == 1
    assert records[0].levelno <= logging.INFO
    assert records[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_request_without_client_certificate(pki: Pki, port: int) -> None:
    body = await _get_json(_client_context(pki), port)
    assert body["scheme"] == "https"
    assert body["peer"] is None
    assert body["sslcontext"] is True
    assert body["ssl_object"] is True
    assert body["socket"] is True


async def test_request_with_client_certificate(pki: Pki, port: int) -> None:
    body = await _get_json(_client_context(pki, pki.direct), port)
    assert body["scheme"] == "https"
    assert body["peer"]["leaf"] == pki.direct.leaf.subject.rfc4514_string()
    assert body["peer"]["chain"] == []


async def test_request_with_intermediate_chain(pki: Pki, port: int) -> None:
    body = await _get_json(_client_context(pki, pki.chained), port)
    assert body["peer"]["leaf"] == pki.chained.leaf.subject.rfc4514_string()
    assert body["peer"]["chain"] == [c.subject.rfc4514_string() for c in pki.chained.intermediates]


async def test_keep_alive_reuses_the_connection_and_its_tls_info(pki: Pki, port: int) -> None:
    connector = aiohttp.TCPConnector(ssl=_client_context(pki, pki.direct))
    bodies = []
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(5):
            async with session.get(f"https://127.0.0.1:{port}/peer") as response:
                bodies.append(await response.json())
    assert len({body["transport"] for body in bodies}) == 1
    assert len({body["peer_port"] for body in bodies}) == 1
    assert len({body["tls_info"] for body in bodies}) == 1


async def test_large_response_with_flow_control(pki: Pki, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original_pause = web_protocol.RequestHandler.pause_writing
    original_resume = web_protocol.RequestHandler.resume_writing

    def pause(self: web_protocol.RequestHandler) -> None:
        calls.append("pause")
        original_pause(self)

    def resume(self: web_protocol.RequestHandler) -> None:
        calls.append("resume")
        original_resume(self)

    monkeypatch.setattr(web_protocol.RequestHandler, "pause_writing", pause)
    monkeypatch.setattr(web_protocol.RequestHandler, "resume_writing", resume)
    connector = aiohttp.TCPConnector(ssl=_client_context(pki))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"https://127.0.0.1:{port}/big") as response,
    ):
        # Let the server run into a full socket before we start reading.
        await asyncio.sleep(0.2)
        body = await response.read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(_BIG).digest()
    assert "pause" in calls
    # aiohttp asserts strict alternation; the transport must forward it as such.
    assert calls == ["pause", "resume"] * (len(calls) // 2)


async def test_large_request_body(pki: Pki, port: int) -> None:
    connector = aiohttp.TCPConnector(ssl=_client_context(pki))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(f"https://127.0.0.1:{port}/upload", data=io.BytesIO(_UPLOAD)) as response,
    ):
        body = await response.json()
    assert body == {"length": len(_UPLOAD), "sha256": hashlib.sha256(_UPLOAD).hexdigest()}


@pytest.mark.parametrize(
    ("max_version", "expected"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
    ids=["TLSv1.2", "TLSv1.3"],
)
async def test_tls_versions(pki: Pki, port: int, max_version: ssl.TLSVersion, expected: str) -> None:
    body = await _get_json(_client_context(pki, pki.chained, max_version=max_version), port)
    assert body["version"] == expected
    assert body["peer"]["chain"] == [c.subject.rfc4514_string() for c in pki.chained.intermediates]


@pytest.mark.parametrize(
    "max_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"]
)
async def test_an_offered_session_gets_a_full_handshake_with_leaf_and_chain(
    pki: Pki, port: int, max_version: ssl.TLSVersion
) -> None:
    ctx = _client_context(pki, pki.chained, max_version=max_version)
    first = await asyncio.to_thread(_exchange, ctx, port)
    assert first.body["resumed"] is False
    assert first.session is not None

    second = await asyncio.to_thread(_exchange, ctx, port, session=first.session)
    assert second.session_reused is False
    assert second.body["resumed"] is False
    assert second.body["peer"] == first.body["peer"]
    assert second.body["peer"]["chain"] == [c.subject.rfc4514_string() for c in pki.chained.intermediates]


async def test_alpn_http_1_1_is_negotiated(pki: Pki, port: int) -> None:
    ctx = _client_context(pki)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    exchange = await asyncio.to_thread(_exchange, ctx, port)
    assert exchange.alpn == "http/1.1"
    assert exchange.body["alpn"] == "http/1.1"


async def test_server_close_sends_close_notify(pki: Pki, port: int) -> None:
    # _exchange reads with suppress_ragged_eofs=False until recv() returns b"",
    # which the ssl module only does after a close_notify (else: SSLEOFError).
    exchange = await asyncio.to_thread(_exchange, _client_context(pki), port)
    assert exchange.status == 200


async def test_client_close_notify_is_answered(pki: Pki, port: int) -> None:
    def run() -> None:
        ctx = _client_context(pki)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            response = b""
            while b"}" not in response:
                response += tls.recv(65536)
            # Blocks until the server's own close_notify arrives.
            tls.unwrap()

    await asyncio.to_thread(run)


async def _normal_request_succeeds(pki: Pki, port: int) -> None:
    body = await _get_json(_client_context(pki, pki.direct), port)
    assert body["peer"]["leaf"] == pki.direct.leaf.subject.rfc4514_string()


def _client_hello(pki: Pki) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _client_context(pki).wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def test_client_disconnecting_mid_handshake(
    pki: Pki, port: int, tls_log: pytest.LogCaptureFixture
) -> None:
    hello = _client_hello(pki)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(hello[: len(hello) // 2])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    _assert_quiet_failure(await _wait_for_log(tls_log, 1), tls_log)
    await _normal_request_succeeds(pki, port)


async def test_plaintext_http_is_closed(pki: Pki, port: int, tls_log: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)  # returns at EOF
    assert not answer.startswith(b"HTTP/")
    writer.close()
    _assert_quiet_failure(await _wait_for_log(tls_log, 1), tls_log)
    await _normal_request_succeeds(pki, port)


async def test_client_rejecting_the_server_certificate(
    pki: Pki, port: int, tls_log: pytest.LogCaptureFixture
) -> None:
    untrusting = ssl.create_default_context(cafile=str(pki.client_ca_file))
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get_json(untrusting, port)
    _assert_quiet_failure(await _wait_for_log(tls_log, 1), tls_log)
    await _normal_request_succeeds(pki, port)


async def test_silent_client_hits_the_handshake_timeout(
    start_server: StartServer, tls_log: pytest.LogCaptureFixture
) -> None:
    port = await start_server(handshake_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    # An abort may surface as a reset; either way the server hung up.
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), 5) == b""
    elapsed = time.monotonic() - started
    writer.close()
    assert 0.4 <= elapsed < 3
    records = await _wait_for_log(tls_log, 1)
    assert "timed out" in records[0].getMessage()
    _assert_quiet_failure(records, tls_log)


async def test_ten_concurrent_clients(pki: Pki, port: int) -> None:
    identities = [pki.direct, pki.chained, None] * 3 + [pki.self_signed]
    bodies = await asyncio.gather(
        *(_get_json(_client_context(pki, identity), port) for identity in identities)
    )
    assert len({body["peer_port"] for body in bodies}) == 10
    for identity, body in zip(identities, bodies, strict=True):
        expected = None if identity is None else identity.leaf.subject.rfc4514_string()
        assert (body["peer"] or {}).get("leaf") == expected


async def test_context_factory_is_called_per_connection(
    pki: Pki, start_server: StartServer, server_context: SSL.Context
) -> None:
    contexts = [server_context]

    def current() -> SSL.Context:
        return contexts[-1]

    port = await start_server(context=current)
    first = await _get_json(_client_context(pki, pki.direct), port)
    assert first["peer"] is not None
    # A "reload" to a context that does not ask for certificates applies to new
    # connections only.
    contexts.append(
        build_server_context(pki.server_cert_file, pki.server_key_file, request_client_certificate=False)
    )
    second = await _get_json(_client_context(pki, pki.direct), port)
    assert second["peer"] is None


def _renegotiate(pki: Pki, port: int) -> str:
    """A TLS 1.2 client that, after one request, asks to renegotiate; what ended its wait."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.load_verify_locations(str(pki.server_ca_file))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        conn = SSL.Connection(ctx, raw)
        conn.set_connect_state()
        conn.set_tlsext_host_name(b"localhost")
        conn.do_handshake()
        conn.sendall(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = b""
        while b"}" not in response:
            response += conn.recv(65536)
        assert response.startswith(b"HTTP/1.1 200")
        assert conn.renegotiate()
        raw.setblocking(False)  # wait for the answer 5 s at most
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                select.select([raw], [], [], max(deadline - time.monotonic(), 0))
            except SSL.Error as exc:
                return repr(exc)
            else:
                return "renegotiated"
        return "no answer"


async def test_renegotiation_is_refused_with_an_alert_and_a_close(
    pki: Pki, port: int, tls_log: pytest.LogCaptureFixture
) -> None:
    # Issue 9, finding 14: the refusal used to stay in the server's buffer while the client waited.
    started = time.monotonic()
    outcome = await asyncio.to_thread(_renegotiate, pki, port)
    assert "no renegotiation" in outcome
    assert time.monotonic() - started < 4
    records = await _wait_for_log(tls_log, 1)
    assert "renegotiate" in records[0].getMessage()
    await _normal_request_succeeds(pki, port)


def _server_side_objects() -> list[str]:
    """Every live (or collectable but not yet collected) TLS connection object of the server, by
    name only: holding the objects themselves would keep them alive."""
    kinds = (TLSServerProtocol, TLSTransport, PeerCertificates, TLSInfo)
    return [type(obj).__name__ for obj in gc.get_objects() if isinstance(obj, kinds)]


async def test_a_closed_connection_is_freed_by_reference_counting(pki: Pki, port: int) -> None:
    # Issue 9, finding 2: closed connections used to wait in reference cycles for a full
    # collection, with their peer's certificates.
    gc.collect()
    gc.disable()
    try:
        before = sorted(_server_side_objects())  # other tests' objects, still in use
        for identity in (pki.chained, pki.direct, None):
            await _get_json(_client_context(pki, identity), port)
        for _ in range(200):
            if sorted(_server_side_objects()) == before:
                break
            await asyncio.sleep(0.01)
        assert sorted(_server_side_objects()) == before
    finally:
        gc.enable()


async def _refused(port: int) -> bool:
    """Whether the server closes a new connection before any TLS (the client's hello is ignored)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


async def _silent_connections(port: int, count: int) -> list[asyncio.StreamWriter]:
    """`count` connections that never start their handshake (each counts as handshaking)."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    return writers


def _limits(**caps: int) -> ConnectionAdmission:
    defaults = {"max_connections": 100, "max_connections_per_source": 100, "max_handshakes_per_source": 100}
    return ConnectionAdmission(ConnectionLimits(**(defaults | caps)))


@pytest.mark.parametrize(
    "cap", ["max_connections", "max_connections_per_source", "max_handshakes_per_source"]
)
async def test_a_connection_over_a_cap_is_closed_and_the_others_are_served(
    pki: Pki, start_server: StartServer, cap: str, tls_log: pytest.LogCaptureFixture
) -> None:
    admission = _limits(**{cap: 3})
    port = await start_server(admission=admission)
    held = await _silent_connections(port, 3)
    try:
        for _ in range(50):
            if admission.open_connections == 3:
                break
            await asyncio.sleep(0.01)
        assert await _refused(port)
        records = await _wait_for_log(tls_log, 1)
        assert "refused a connection from" in records[0].getMessage()
    finally:
        for writer in held:
            writer.close()
    for _ in range(100):
        if admission.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert admission.open_connections == 0
    await _normal_request_succeeds(pki, port)


async def test_connections_within_the_caps_are_all_served(pki: Pki, start_server: StartServer) -> None:
    admission = _limits(max_connections=4, max_connections_per_source=4, max_handshakes_per_source=4)
    port = await start_server(admission=admission)
    held = await _silent_connections(port, 3)
    try:
        await _normal_request_succeeds(pki, port)  # the fourth
    finally:
        for writer in held:
            writer.close()


async def test_established_connections_do_not_count_as_handshaking(
    pki: Pki, start_server: StartServer
) -> None:
    admission = _limits(max_handshakes_per_source=1)
    port = await start_server(admission=admission)
    connector = aiohttp.TCPConnector(ssl=_client_context(pki), limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Three keep-alive connections at once, each past its handshake before the next starts.
        responses = [await session.get(f"https://127.0.0.1:{port}/big") for _ in range(3)]
        assert admission.open_connections == 3
        for response in responses:
            response.release()


async def test_an_over_long_chain_fails_the_handshake_and_others_are_served(
    pki: Pki, port: int, tmp_path: Path, tls_log: pytest.LogCaptureFixture
) -> None:
    # Issue 9, finding 1: the chain is refused before OpenSSL checks any of its signatures.
    ca = make_ca(ca_name("root"))
    for level in range(MAX_INTERMEDIATES + 1):
        ca = make_ca(ca_name(f"intermediate {level}"), parent=ca)
    ctx = _client_context(pki)
    issue(ca, name()).configure_cert(ctx, tmp_path)
    # In TLS 1.3 the server judges the client's chain after the client's handshake is over.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.to_thread(_exchange, ctx, port)
    records = await _wait_for_log(tls_log, 1)
    refusal = f"client certificate refused: more than {MAX_INTERMEDIATES} intermediate"
    assert refusal in records[0].getMessage()
    _assert_quiet_failure(records, tls_log)
    await _normal_request_succeeds(pki, port)
