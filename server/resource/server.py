"""Serving an aiohttp app over certbound's own TLS layer (what `certbound demo-resource` runs):
it asks every client for a certificate and accepts any (RFC 8705 §3: the token's binding decides,
not the handshake), with the request-header deadline and keep-alive limit of `serve` (SPEC §10).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from certbound.httpguard import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    handler_factory,
)
from certbound.tls import ConnectionAdmission, ConnectionLimits, build_server_context, start_tls_server
from certbound.tls.admission import DEFAULT_LIMITS

__all__ = ["ResourceServer", "start_resource_server"]


@dataclass
class ResourceServer:
    """An app served over certbound's TLS layer (see start_resource_server)."""

    runner: web.AppRunner
    listener: asyncio.Server
    host: str

    @property
    def port(self) -> int:
        port: int = self.listener.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"https://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close."""
        self.listener.close()
        await self.runner.cleanup()
        await self.listener.wait_closed()


async def start_resource_server(
    app: web.Application,
    *,
    tls_cert: str | Path,
    tls_key: str | Path,
    client_ca: Sequence[str | Path] = (),
    host: str = "127.0.0.1",
    port: int = 9443,
    handshake_timeout: float = 10.0,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    connection_limits: ConnectionLimits = DEFAULT_LIMITS,
) -> ResourceServer:
    """Serve `app` on host:port over TLS that asks for a client certificate and accepts any
    within the handshake bounds of `serve`. `client_ca` subjects are only advertised, to help
    clients choose a certificate. Request headers must arrive within `header_timeout` seconds of
    their first byte and the whole request within `request_timeout`; idle keep-alive connections
    close after `keepalive_timeout`; `connection_limits` caps what peers hold open. Raises
    certbound.tls.TLSConfigError for unusable files and OSError when the port cannot be bound."""
    tls = build_server_context(
        Path(tls_cert),
        Path(tls_key),
        request_client_certificate=True,
        client_ca_names=[Path(path) for path in client_ca],
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        if runner.server is None:
            raise RuntimeError("aiohttp runner did not create its server")
        # The same slow-client deadlines and connection caps as `serve` (issue 9 finding 6).
        protocol_factory = handler_factory(
            runner.server,
            header_timeout=header_timeout,
            request_timeout=request_timeout,
            keepalive_timeout=keepalive_timeout,
        )
        listener = await start_tls_server(
            protocol_factory,
            tls,
            host,
            port,
            handshake_timeout=handshake_timeout,
            admission=ConnectionAdmission(connection_limits),
        )
    except BaseException:
        await runner.cleanup()
        raise
    return ResourceServer(runner, listener, host)
