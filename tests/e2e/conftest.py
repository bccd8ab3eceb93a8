"""End-to-end fixtures: a real certbound on 127.0.0.1 with trustme PKI and a real HTTPS client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from server.testing import CertboundTestServer
from tests.helpers import basic_auth

__all__ = ["basic_auth"]


@pytest.fixture
async def server() -> AsyncIterator[CertboundTestServer]:
    async with CertboundTestServer() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
