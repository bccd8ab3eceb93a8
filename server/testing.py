"""Start a real certbound in-process for tests (ours and other projects').

    async with CertboundTestServer() as server:
        client = await server.add_client("client_secret_basic")
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/token", ssl=server.client_ssl_context(),
                                 auth=aiohttp.BasicAuth(client.client_id, client.secret),
                                 data={"grant_type": "client_credentials"}) as response:
                token = await response.json()

The server listens on 127.0.0.1 on an ephemeral port, with a trustme CA for its certificate and
another for client certificates, and an in-memory SQLite database unless `db` is given.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme

from server.config import Settings
from server.management import ClientManager, CreatedClient
from server.runtime import RunningServer, start_server

__all__ = ["CertboundTestServer", "TestClient"]


@dataclasses.dataclass(frozen=True)
class TestClient:
    """A registered client and what it needs to authenticate."""

    __test__ = False  # not a pytest test class

    client_id: str
    secret: str | None
    metadata: dict[str, Any]


def _free_port() -> int:
    """A port free on 127.0.0.1 now: the issuer must name the port before the server starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CertboundTestServer:
    __test__ = False

    def __init__(self, *, db: str = "sqlite://:memory:", **settings: Any) -> None:
        self.server_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self._db = db
        self._overrides = settings
        self._tmp = tempfile.TemporaryDirectory(prefix="certbound-test-")
        self.directory = Path(self._tmp.name)
        self._running: RunningServer | None = None

    @property
    def running(self) -> RunningServer:
        if self._running is None:
            raise RuntimeError("server is not started")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def settings(self) -> Settings:
        return self.running.settings

    @property
    def issuer(self) -> str:
        return self.running.settings.issuer

    async def start(self) -> CertboundTestServer:
        leaf = self.server_ca.issue_cert("localhost", "127.0.0.1", "::1")
        cert_file, key_file = self.directory / "server.pem", self.directory / "server.key"
        client_ca_file = self.directory / "client-ca.pem"
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key_file.write_bytes(leaf.private_key_pem.bytes())
        client_ca_file.write_bytes(self.client_ca.cert_pem.bytes())
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": _free_port(),
            "tls_cert": cert_file,
            "tls_key": key_file,
            "client_ca": (client_ca_file,),
            "db": self._db,
        }
        values.update(self._overrides)
        values.setdefault("issuer", f"https://localhost:{values['port']}")
        self._running = await start_server(Settings(**values))
        return self

    async def stop(self) -> None:
        if self._running is not None:
            await self._running.stop()
            self._running = None
        self._tmp.cleanup()

    async def __aenter__(self) -> CertboundTestServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def manager(self) -> ClientManager:
        context = self.running.context
        return ClientManager(context.store, context.vault, context.settings, context.clients)

    async def add_client(
        self,
        method: str = "client_secret_basic",
        *,
        secret: str | None = None,
        client_id: str | None = None,
        **metadata: Any,
    ) -> TestClient:
        created: CreatedClient = await self.manager().create(
            {"token_endpoint_auth_method": method, **metadata}, client_id=client_id, secret=secret
        )
        return TestClient(created.client.client_id, created.secret, dict(created.client.metadata))

    def issue_client_cert(self, *identities: str, **kwargs: Any) -> trustme.LeafCert:
        """A client certificate from the server's trusted client CA."""
        return self.client_ca.issue_cert(*identities, **kwargs)

    def client_ssl_context(self, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """An SSL context that trusts the server and presents `cert`, if given."""
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context
