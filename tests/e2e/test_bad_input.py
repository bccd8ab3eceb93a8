"""SPEC §10: bad input gets a clear protocol error or a closed connection, and everyone else is
still served."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from certbound.testing import CertboundTestServer
from tests.helpers import basic_auth


async def _chunks(total: int, size: int = 16384) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"a" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


async def _raw_status(server: CertboundTestServer, request: bytes) -> bytes:
    """The status code the server answers to raw request bytes over TLS."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.running.port, ssl=server.client_ssl_context(), server_hostname="localhost"
    )
    writer.write(request)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    writer.close()
    return status_line.split(b" ")[1]


async def _still_serving(server: CertboundTestServer, http: aiohttp.ClientSession) -> None:
    client = await server.add_client("client_secret_basic")
    async with http.post(
        server.url + "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic_auth(client.client_id, client.secret or "")},
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.status == 200


async def test_a_10_mb_form_body_is_413(server: CertboundTestServer, http: aiohttp.ClientSession) -> None:
    async with http.post(
        server.url + "/token",
        data=b"grant_type=" + b"x" * (10 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "invalid_request"
    await _still_serving(server, http)


async def test_a_chunked_form_body_over_64_kib_is_413(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        server.url + "/token",
        data=_chunks(65 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert response.status == 413
    await _still_serving(server, http)


async def test_a_chunked_json_body_over_256_kib_is_413(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        server.url + "/register",
        data=_chunks(257 * 1024),
        headers={"Content-Type": "application/json"},
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.status == 413
    await _still_serving(server, http)


async def test_a_form_body_that_is_not_utf8(server: CertboundTestServer, http: aiohttp.ClientSession) -> None:
    async with http.post(
        server.url + "/token",
        data=b"grant_type=client_credentials&scope=%ff%fe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_a_garbage_request_line_is_refused_and_others_are_served(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    assert await _raw_status(server, b"\x00\x01garbage \xff\r\n\r\n") == b"400"
    await _still_serving(server, http)


async def test_a_malformed_header_is_400_and_one_log_line_without_traceback(
    server: CertboundTestServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        request = b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n"
        assert await _raw_status(server, request) == b"400"
        await _still_serving(server, http)
    refusals = [record for record in caplog.records if "malformed request" in record.getMessage()]
    assert len(refusals) == 1
    assert "Content-Type" in refusals[0].getMessage()
    assert not any(record.exc_info or record.levelno >= logging.ERROR for record in caplog.records)
