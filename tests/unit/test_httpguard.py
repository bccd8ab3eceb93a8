"""SPEC §10: request headers within header_timeout of their first byte, over the real stack."""

from __future__ import annotations

import asyncio

from certbound.testing import CertboundTestServer


async def _open(server: CertboundTestServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", server.running.port, ssl=server.client_ssl_context(), server_hostname="localhost"
    )


async def _serves_others(server: CertboundTestServer) -> None:
    reader, writer = await _open(server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), timeout=5)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_slow_headers_are_cut_off_and_others_are_served() -> None:
    async with CertboundTestServer(header_timeout=1) as server:
        reader, writer = await _open(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed, no response
        writer.close()
        await _serves_others(server)


async def test_deadline_applies_to_each_request_of_a_keepalive_connection() -> None:
    async with CertboundTestServer(header_timeout=1) as server:
        reader, writer = await _open(server)
        for _ in range(2):
            # a request that arrives in pieces, but within the deadline, is served
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(b"Host: localhost\r\n\r\n")
            assert (await asyncio.wait_for(reader.readline(), timeout=5)).startswith(b"HTTP/1.1 200")
            await reader.readuntil(b'{"status":"ok"}')
        await asyncio.sleep(1.5)  # idle between requests is not "slow headers"
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), timeout=5)).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b'{"status":"ok"}')
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()


async def test_idle_keepalive_connections_close() -> None:
    async with CertboundTestServer(keepalive_timeout=1) as server:
        reader, writer = await _open(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await reader.readuntil(b'{"status":"ok"}')
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()


async def test_a_slow_body_is_not_mistaken_for_slow_headers() -> None:
    async with CertboundTestServer(header_timeout=1) as server:
        reader, writer = await _open(server)
        writer.write(
            b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 29\r\n\r\ngrant_type=client_"
        )
        await writer.drain()
        await asyncio.sleep(1.5)
        writer.write(b"credentials")
        status = await asyncio.wait_for(reader.readline(), timeout=5)
        assert status.startswith(b"HTTP/1.1 401")  # answered (no client auth), not cut off
        writer.close()


_STALLED_TOKEN_REQUEST = (
    b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 29\r\n\r\ngrant_type=client_"
)


async def test_a_stalled_body_is_answered_408_and_closed() -> None:
    # Issue 9, finding 6: such a request used to hold its connection for ever.
    async with CertboundTestServer(request_timeout=1) as server:
        reader, writer = await _open(server)
        writer.write(_STALLED_TOKEN_REQUEST)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)  # to EOF: the server closed
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"Connection: close" in answer
        writer.close()
        await _serves_others(server)


async def test_the_request_deadline_runs_from_the_first_header_byte() -> None:
    async with CertboundTestServer(header_timeout=10, request_timeout=2) as server:
        reader, writer = await _open(server)
        head, body = _STALLED_TOKEN_REQUEST.split(b"\r\n\r\n")
        for line in head.split(b"\r\n"):  # headers within their own deadline, but slowly
            writer.write(line + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.3)
        writer.write(b"\r\n" + body)
        await writer.drain()
        await asyncio.sleep(0.6)
        writer.write(b"credenti")  # the body is still arriving, too late
        assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 408")
        writer.close()


async def test_a_stalled_body_after_the_answer_just_closes() -> None:
    async with CertboundTestServer(request_timeout=1) as server:
        reader, writer = await _open(server)
        # /healthz does not read the body: it answers at once, and aiohttp would then wait up to
        # 10 s (its lingering time) for the rest of the body.
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.count(b"HTTP/1.1") == 1
        writer.close()


async def test_each_request_of_a_keepalive_connection_gets_its_own_deadline() -> None:
    async with CertboundTestServer(request_timeout=1, header_timeout=1) as server:
        reader, writer = await _open(server)
        for _ in range(2):
            writer.write(_STALLED_TOKEN_REQUEST)
            await writer.drain()
            await asyncio.sleep(0.5)
            writer.write(b"credentials")  # completes the body within the deadline
            assert (await asyncio.wait_for(reader.readline(), timeout=5)).startswith(b"HTTP/1.1 401")
            await reader.readuntil(b"}")
            await asyncio.sleep(1.2)  # idle longer than the deadline between requests
        writer.close()
