"""A pytest plugin for test suites that need a real certbound: one server per test, and clients of
any of the seven authentication methods ready to use (certbound.testing).

Load it with `pytest -p certbound.pytest_plugin`, with `pytest_plugins = ["certbound.pytest_plugin"]`,
or through the package's `pytest11` entry point. The fixtures are async: pytest-asyncio runs them
(in strict mode too).

- `certbound_server_options`: Settings overrides for the server (e.g. `{"token_lifetime": 60}`);
  override this fixture to configure the server.
- `certbound_server`: a started CertboundTestServer on 127.0.0.1, stopped after the test.
- `certbound_client_factory`: `await certbound_client_factory(method, **metadata)` registers a
  client and returns a ReadyClient (credentials, certificate, `fetch_token`, `session`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import pytest
import pytest_asyncio

from certbound.testing import CertboundTestServer, ReadyClient

__all__ = [
    "ClientFactory",
    "certbound_client_factory",
    "certbound_server",
    "certbound_server_options",
]


class ClientFactory(Protocol):
    def __call__(
        self, method: str = ..., *, certificate: bool | None = ..., **metadata: Any
    ) -> Awaitable[ReadyClient]: ...


@pytest.fixture
def certbound_server_options() -> dict[str, Any]:
    """Keyword arguments for CertboundTestServer: Settings fields (override to configure)."""
    return {}


@pytest_asyncio.fixture
async def certbound_server(certbound_server_options: dict[str, Any]) -> AsyncIterator[CertboundTestServer]:
    async with CertboundTestServer(**certbound_server_options) as server:
        yield server


@pytest.fixture
def certbound_client_factory(certbound_server: CertboundTestServer) -> ClientFactory:
    return certbound_server.new_client
