"""`certbound serve`: TLS listeners in front of the aiohttp app, signals, graceful drain.

SIGTERM/SIGINT stop accepting, let in-flight requests finish within --drain-timeout, close idle
keep-alive connections (close_notify included), then the process exits 0 (SPEC §3).
SIGHUP re-reads the server certificate and key, the client CA bundles, the CRLs and the
`--federation` file (with the key sets and bundles it names as files) without dropping a connection:
new connections and requests get the new configuration, live connections keep their TLS context;
all or nothing: a file that cannot be used is logged and the whole running configuration stays.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web
from OpenSSL import SSL

from certbound.announce import announce_ready
from certbound.app import build_context, create_app
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.devpki import DEV_CERTS_DIR, ensure_dev_pki
from certbound.errors import ConfigError
from certbound.httpguard import handler_factory
from certbound.metrics import Metrics
from certbound.tls import (
    ConnectionAdmission,
    ConnectionLimits,
    TLSConfigError,
    build_server_context,
    start_tls_server,
)

__all__ = [
    "DEV_CERTS_DIR",
    "ListenerContexts",
    "RunningServer",
    "bind_listener",
    "bind_listeners",
    "resolve_tls_files",
    "run_server",
    "start_server",
]

log = logging.getLogger("certbound")

_GC_GEN0_THRESHOLD = 20_000


def resolve_tls_files(settings: Settings) -> Settings:
    """With no TLS flags, use (creating when missing) the dev PKI in certs/ (SPEC §3)."""
    if settings.tls_cert is not None:
        return settings
    pki = ensure_dev_pki(DEV_CERTS_DIR)
    log.warning("no --tls-cert given: using the development PKI in %s (not for production)", DEV_CERTS_DIR)
    return replace(
        settings,
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        client_ca=settings.client_ca or (pki.client_ca,),
    )


def _tls_context(settings: Settings, *, request_client_certificate: bool) -> SSL.Context:
    if settings.tls_cert is None or settings.tls_key is None:
        raise ConfigError("--tls-cert and --tls-key go together")
    for path in settings.client_ca:
        if not path.is_file():
            raise ConfigError(f"client CA file not found: {path}")
    try:
        return build_server_context(
            settings.tls_cert,
            settings.tls_key,
            request_client_certificate=request_client_certificate,
            client_ca_names=settings.client_ca,
        )
    except TLSConfigError as exc:
        raise ConfigError(str(exc)) from None


class ListenerContexts:
    """The SSL context of each listener, as a callable per listener: every new connection gets the
    current one, so a reload takes effect without touching live connections."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._contexts = self.build()

    def build(self) -> list[SSL.Context]:
        """Fresh contexts from the files (ConfigError when one cannot be used); not yet in use."""
        settings = self._settings
        # One context per listener; with --mtls-port only that listener asks for a certificate.
        contexts = [_tls_context(settings, request_client_certificate=settings.mtls_port is None)]
        if settings.mtls_port is not None:
            contexts.append(_tls_context(settings, request_client_certificate=True))
        return contexts

    def install(self, contexts: list[SSL.Context]) -> None:
        self._contexts = contexts

    def current(self, listener: int) -> Callable[[], SSL.Context]:
        return lambda: self._contexts[listener]


@dataclass
class RunningServer:
    """A started server: its listeners, runner and shared services."""

    settings: Settings
    context: ServerContext
    runner: web.AppRunner
    listeners: list[asyncio.Server]
    tls: ListenerContexts

    @property
    def port(self) -> int:
        port: int = self.listeners[0].sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}"

    def reload(self) -> bool:
        """SIGHUP: re-read the TLS identity, client CAs, CRLs and federation file; all or nothing.
        Returns whether the new configuration is in use (on failure the error is logged and nothing
        changes)."""
        try:
            contexts = self.tls.build()
            trust = self.context.trust.load_next()
            federation = self.context.federation.load()
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        self.tls.install(contexts)
        self.context.trust.install(trust)
        self.context.federation.install(federation)
        federated = (
            ""
            if federation is None
            else f", {len(federation.issuers)} federated issuers, "
            f"{len(federation.trust_domains)} SPIFFE trust domains"
        )
        log.info(
            "reloaded: server certificate, %d client CA certificates, %d CRLs (trust generation %d)%s",
            len(trust.anchors),
            len(trust.revocation),
            trust.generation,
            federated,
        )
        return True

    async def stop(self) -> None:
        """Stop accepting, drain in-flight requests (bounded by --drain-timeout), close."""
        for listener in self.listeners:
            listener.close()
        await self.runner.cleanup()
        for listener in self.listeners:
            await listener.wait_closed()
        await self.context.store.close()


def bind_listener(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind before opening the database: a port in use is bad configuration, reported alone.
    `reuse_port` lets several worker processes each bind the port (SO_REUSEPORT): the kernel
    then spreads new connections evenly across them."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=1024, reuse_port=reuse_port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def bind_listeners(settings: Settings, *, reuse_port: bool = False) -> list[socket.socket]:
    """The main listener, then the --mtls-port one when configured."""
    sockets = [bind_listener(settings.host, settings.port, reuse_port=reuse_port)]
    if settings.mtls_port is not None:
        sockets.append(bind_listener(settings.host, settings.mtls_port, reuse_port=reuse_port))
    return sockets


async def start_server(
    settings: Settings, sockets: list[socket.socket] | None = None, *, metrics_directory: Path | None = None
) -> RunningServer:
    """Start serving on `sockets` (already bound, one per listener) or on newly bound ones;
    `metrics_directory` is where the workers of one `serve --workers` share their metrics."""
    settings = resolve_tls_files(settings)
    tls = ListenerContexts(settings)
    sockets = sockets if sockets is not None else bind_listeners(settings)
    try:
        context = await build_context(settings, metrics=Metrics(metrics_directory))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    runner = web.AppRunner(
        create_app(context),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=float(settings.drain_timeout),
    )
    await runner.setup()
    if runner.server is None:
        raise RuntimeError("aiohttp runner did not create its server")
    protocol_factory = handler_factory(
        runner.server,
        header_timeout=settings.header_timeout,
        request_timeout=settings.request_timeout,
        keepalive_timeout=settings.keepalive_timeout,
    )
    # One worker's caps, shared by its listeners; trusted proxies speak for many clients, so they
    # are exempt from the per-address caps.
    admission = ConnectionAdmission(
        ConnectionLimits(
            max_connections=settings.max_connections,
            max_connections_per_source=settings.max_connections_per_ip,
            max_handshakes_per_source=settings.max_handshakes_per_ip,
            exempt=settings.trusted_proxy,
        )
    )
    listeners = [
        await start_tls_server(
            protocol_factory,
            tls.current(index),
            sock=sock,
            handshake_timeout=settings.handshake_timeout,
            admission=admission,
        )
        for index, sock in enumerate(sockets)
    ]
    return RunningServer(settings, context, runner, listeners, tls)


async def run_server(
    settings: Settings,
    *,
    sockets: list[socket.socket] | None = None,
    announce: Callable[[str], None] | None = None,
    metrics_directory: Path | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return. Once serving, `announce(url)` is
    called (by default: print the ready lines, certbound.announce)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await start_server(settings, sockets, metrics_directory=metrics_directory)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    _tune_garbage_collector()
    if announce is None:
        announce_ready(server.url, server.settings)
    else:
        announce(server.url)
    await stop.wait()
    log.info("shutting down: draining in-flight requests (up to %ss)", settings.drain_timeout)
    await server.stop()


def _tune_garbage_collector() -> None:
    """Every request allocates a few hundred short-lived objects that reference counting frees;
    the default generation-0 threshold (700) would still run the cycle collector every few
    requests, scanning the long-lived start-up objects each time. Freeze those and collect less
    often: cycles are still collected, just in larger batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
