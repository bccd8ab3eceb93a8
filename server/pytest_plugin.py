"""A pytest plugin for test suites that need a real certbound: one server per test, and clients of
any of the seven authentication methods ready to use (certbound.testing).

pytest loads it wherever certbound is installed (the `pytest11` entry point; `-p
certbound.pytest_plugin` or `pytest_plugins = ["certbound.pytest_plugin"]` work too, and `-p
no:certbound.pytest_plugin` turns it off). So that it can never break another project's run, this
module imports only pytest: certbound.testing (aiohttp, cryptography, trustme) is imported when a
test first asks for a fixture, and nothing needs pytest-asyncio. The server runs on its own event
loop in a thread, so the fixtures are synchronous and serve synchronous tests (requests, httpx) and
async tests alike, in pytest-asyncio's strict and auto modes and with any loop scope.

- `certbound_server_options`: `certbound serve` options for the server (e.g. `{"token_lifetime":
  60}`), checked by the same parsers as the command line; override this fixture to configure it.
- `certbound_server`: a started CertboundServerThread on 127.0.0.1, stopped after the test.
- `certbound_client_factory`: `certbound_client_factory(method, **metadata)` registers a client and
  returns a ReadyClient (credentials, certificate and key files, `fetch_token`, `session`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from certbound.testing import CertboundServerThread, ReadyClient

__all__ = [
    "ClientFactory",
    "certbound_client_factory",
    "certbound_server",
    "certbound_server_options",
]


class ClientFactory(Protocol):
    def __call__(
        self, method: str = ..., *, certificate: bool | None = ..., **metadata: Any
    ) -> ReadyClient: ...


@pytest.fixture
def certbound_server_options() -> dict[str, Any]:
    """`certbound serve` options (certbound.config.OPTIONS names) for the server: override to
    configure it."""
    return {}


@pytest.fixture
def certbound_server(certbound_server_options: dict[str, Any]) -> Iterator[CertboundServerThread]:
    from certbound.testing import CertboundServerThread

    with CertboundServerThread(**certbound_server_options) as server:
        yield server


@pytest.fixture
def certbound_client_factory(certbound_server: CertboundServerThread) -> ClientFactory:
    return certbound_server.new_client
