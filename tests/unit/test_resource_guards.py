"""`start_resource_server` (what `certbound demo-resource` runs) has `serve`'s guards (issue 9,
findings 1 and 6): the handshake bounds, a request-header deadline and the connection caps."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from certbound.resource import ResourceServer, start_resource_server
from certbound.tls import ConnectionLimits
from certbound.tls.policy import MAX_INTERMEDIATES
from tests.unit.pki.builders import ca_name, issue, make_ca, name


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def resource(tmp_path: Path) -> AsyncIterator[tuple[ResourceServer, Path]]:
    ca = trustme.CA()
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "rs.pem", tmp_path / "rs.key"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert("localhost")
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    app = web.Application()
    app.router.add_get("/resource", _ok)
    # Tighter guards than the defaults, so the test does not wait 10 s.
    limits = ConnectionLimits(
        max_connections=1024, max_connections_per_source=2, max_handshakes_per_source=64
    )
    server = await start_resource_server(
        app, tls_cert=cert_file, tls_key=key_file, port=0, header_timeout=1, connection_limits=limits
    )
    yield server, ca_file
    await server.stop()


async def _open(
    server: ResourceServer, ca_file: Path, context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    context = context or ssl.create_default_context(cafile=str(ca_file))
    return await asyncio.open_connection("127.0.0.1", server.port, ssl=context, server_hostname="localhost")


async def _get(server: ResourceServer, ca_file: Path, context: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await _open(server, ca_file, context)
    writer.write(b"GET /resource HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def test_slow_headers_are_cut_off(resource: tuple[ResourceServer, Path]) -> None:
    server, ca_file = resource
    reader, writer = await _open(server, ca_file)
    writer.write(b"GET /resource HTTP/1.1\r\nHost: localhost\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert (await _get(server, ca_file)).startswith(b"HTTP/1.1 200")


async def test_connections_over_the_per_address_cap_are_refused(
    resource: tuple[ResourceServer, Path],
) -> None:
    server, ca_file = resource
    held = [await _open(server, ca_file) for _ in range(2)]
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _get(server, ca_file)
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)
    assert (await _get(server, ca_file)).startswith(b"HTTP/1.1 200")


def _presenting_a_chain(tmp_path: Path, ca_file: Path, intermediates: int) -> ssl.SSLContext:
    ca = make_ca(ca_name("root"))
    for level in range(intermediates):
        ca = make_ca(ca_name(f"intermediate {level}"), parent=ca)
    context = ssl.create_default_context(cafile=str(ca_file))
    issue(ca, name()).configure_cert(context, tmp_path)
    return context


async def test_an_over_long_client_chain_fails_the_handshake(
    resource: tuple[ResourceServer, Path], tmp_path: Path
) -> None:
    server, ca_file = resource
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _get(server, ca_file, _presenting_a_chain(tmp_path, ca_file, MAX_INTERMEDIATES + 1))
    answer = await _get(server, ca_file, _presenting_a_chain(tmp_path, ca_file, MAX_INTERMEDIATES))
    assert answer.startswith(b"HTTP/1.1 200")
