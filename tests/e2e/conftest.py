"""End-to-end fixtures: a real certbound on 127.0.0.1 with trustme PKI and a real HTTPS client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import quote_plus

import aiohttp
import pytest

from server.testing import CertboundTestServer


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@pytest.fixture
async def server() -> AsyncIterator[CertboundTestServer]:
    async with CertboundTestServer() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
