"""SPEC §10: request headers within header_timeout of their first byte, over the real stack."""

from __future__ import annotations

import asyncio

from certbound.testing import CertboundTestServer


async def _open(server: CertboundTestServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", server.running.port, ssl=server.client_ssl_context(), server_hostname="localhost"
    )


async def test_slow_headers_are_cut_off_and_others_are_served() -> None:
    async with CertboundTestServer(header_timeout=1) as server:
        reader, writer = await _open(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed, no response
        writer.close()
        reader, writer = await _open(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), timeout=5)).startswith(b"HTTP/1.1 200")
        writer.close()


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
