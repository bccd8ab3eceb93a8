"""start_resource_server (what demo-resource runs): certbound's TLS layer with the request-header
deadline of `serve` (SPEC §10, issue 9 finding 6), over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from certbound.resource import ResourceServer, start_resource_server


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def running(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[ResourceServer]:
    leaf = ca.issue_cert("localhost")
    cert, key = tmp_path / "rs.pem", tmp_path / "rs.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    server = await start_resource_server(app, tls_cert=cert, tls_key=key, port=0, header_timeout=1)
    yield server
    await server.stop()


async def _open(server: ResourceServer, ca: trustme.CA) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return await asyncio.open_connection("127.0.0.1", server.port, ssl=context, server_hostname="localhost")


async def test_slow_headers_are_cut_off_and_complete_ones_served(running: ResourceServer, ca) -> None:
    reader, writer = await _open(running, ca)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed, no response
    writer.close()
    # Twin: the same request with its headers complete is answered.
    reader, writer = await _open(running, ca)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), timeout=5)).startswith(b"HTTP/1.1 200")
    writer.close()


def test_url_brackets_an_ipv6_host(running: ResourceServer) -> None:
    assert running.url == f"https://127.0.0.1:{running.port}"
    assert ResourceServer(running.runner, running.listener, "::1").url == f"https://[::1]:{running.port}"
