"""End-to-end fixtures: a real certbound on 127.0.0.1 with trustme PKI and a real HTTPS client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from certbound.testing import CertboundTestServer
from tests.assertion_kit import JwksServer
from tests.federation_kit import TestIssuer
from tests.helpers import ADMIN_TOKEN, basic_auth

__all__ = ["basic_auth"]


@pytest.fixture
async def server() -> AsyncIterator[CertboundTestServer]:
    async with CertboundTestServer() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def jwks_server(tmp_path: Path) -> AsyncIterator[JwksServer]:
    """An HTTPS JWK Set server on 127.0.0.1 with its own trustme CA (a client's jwks_uri)."""
    async with JwksServer(tmp_path) as running:
        yield running


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[TestIssuer]:
    """A token issuer and SPIFFE trust domain over HTTPS on 127.0.0.1 (workload identity)."""
    async with TestIssuer(tmp_path) as running:
        yield running


@pytest.fixture
async def fetching_server(jwks_server: JwksServer) -> AsyncIterator[CertboundTestServer]:
    """A server allowed to fetch the local JWKS server (loopback, its own CA)."""
    async with CertboundTestServer(allow_private_fetch=True, outbound_ca=(jwks_server.ca_file,)) as running:
        yield running


@pytest.fixture
async def admin_server_ca(tmp_path: Path) -> AsyncIterator[tuple[CertboundTestServer, Path]]:
    """A server with the admin API on (ADMIN_TOKEN), and the file of its server CA (`--cacert`)."""
    async with CertboundTestServer(admin_token=ADMIN_TOKEN) as running:
        cacert = tmp_path / "server-ca.pem"
        running.server_ca.cert_pem.write_to_path(str(cacert))
        yield running, cacert
