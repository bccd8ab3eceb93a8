"""The aiohttp application: routes, middleware and the background maintenance of one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from certbound.clients import ClientCache
from certbound.config import Settings
from certbound.context import CONTEXT, ServerContext
from certbound.dpop import NonceIssuer, ProofChecker
from certbound.endpoints.admin import AdminAPI
from certbound.endpoints.health import healthz_endpoint, metrics_endpoint
from certbound.endpoints.introspect import introspection_endpoint
from certbound.endpoints.jwks import jwks_endpoint
from certbound.endpoints.metadata import metadata_endpoint
from certbound.endpoints.readyz import readyz_endpoint
from certbound.endpoints.register import RegistrationEndpoints
from certbound.endpoints.revoke import revocation_endpoint
from certbound.endpoints.token import token_endpoint
from certbound.errors import ConfigError
from certbound.federation import Federation, FederationKeys
from certbound.jwks import ClientKeyResolver
from certbound.keys import KeyRing
from certbound.legacyaudience import LegacyAudienceUses
from certbound.maintenance import maintain
from certbound.metrics import Metrics
from certbound.middleware import request_middleware
from certbound.pki.trust import ClientTrust
from certbound.proxycert import proxy_certificate_middleware
from certbound.secretcheck import SecretChecker
from certbound.store import Store, open_store
from certbound.tokens import AccessTokenIssuer
from certbound.vault import Vault, load_or_create_master_key

__all__ = ["build_context", "create_app", "master_key_path", "open_database", "open_vault"]

log = logging.getLogger("certbound")

#: What the DPoP nonce key is derived for: every node sharing the master key derives the same.
DPOP_NONCE_KEY = b"certbound dpop nonce v1"


def master_key_path(settings: Settings) -> Path | None:
    """Where the master key lives: the setting, else beside the SQLite file (None: in memory)."""
    if settings.master_key_file is not None:
        return settings.master_key_file
    sqlite_path = settings.sqlite_path
    if sqlite_path == ":memory:":
        return None
    if sqlite_path is None:
        raise ConfigError("--master-key-file is required with a PostgreSQL database")
    return Path(sqlite_path + ".key")


def open_vault(settings: Settings) -> Vault:
    path = master_key_path(settings)
    if path is None:
        return Vault(secrets.token_bytes(32))
    return Vault(load_or_create_master_key(path))


async def open_database(settings: Settings) -> Store:
    """The store `--db` names, with the pool size and timeout of the settings."""
    return await open_store(settings.db, pool_size=settings.db_pool_size, seconds=settings.db_timeout)


async def build_context(
    settings: Settings, store: Store | None = None, *, metrics: Metrics | None = None
) -> ServerContext:
    """Open everything a server process needs; the caller closes `context.store`."""
    # Read before anything is opened: an unusable CA, CRL or federation file is a ConfigError.
    trust = ClientTrust(settings.client_ca, settings.client_crl)
    federation = Federation(settings)
    vault = open_vault(settings)
    store = store if store is not None else await open_database(settings)
    keys = KeyRing(
        store,
        vault,
        alg=settings.signing_alg,
        publish_after_retirement=settings.token_lifetime + settings.clock_skew,
    )
    await keys.ensure_active_key()
    clients = ClientCache(store)
    await clients.sync()  # start with a cache that may answer
    tokens = AccessTokenIssuer(
        issuer=settings.issuer, lifetime=settings.token_lifetime, keys=keys, store=store
    )
    metrics = metrics or Metrics()
    # One fetcher (one HTTP session, one SSRF guard) for clients' jwks_uris and federation documents.
    client_keys = ClientKeyResolver(settings)
    return ServerContext(
        settings,
        store,
        vault,
        keys,
        clients,
        tokens,
        metrics,
        client_keys=client_keys,
        trust=trust,
        secret_checker=SecretChecker(vault),
        proofs=ProofChecker(leeway=settings.clock_skew),
        dpop_nonces=_nonce_issuer(settings, vault),
        federation=federation,
        federation_keys=FederationKeys(client_keys.fetcher, metrics, limits=client_keys.limits),
        legacy_audience=LegacyAudienceUses(),
    )


def _nonce_issuer(settings: Settings, vault: Vault) -> NonceIssuer | None:
    """--dpop-nonce: nonces under a key every node sharing the master key derives alike."""
    if not settings.dpop_nonce:
        return None
    return NonceIssuer(vault.subkey(DPOP_NONCE_KEY), skew=settings.clock_skew)


async def _background(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(maintain(app[CONTEXT]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_services(app: web.Application) -> None:
    context = app[CONTEXT]
    try:
        await context.legacy_audience.flush(context.store)
    except Exception as exc:  # the database may be down at shutdown: say what is lost
        log.warning("legacy-audience counts of this process were not saved: %s", exc)
    context.federation_keys.close()
    await context.client_keys.close()
    context.cpu.close()


def create_app(context: ServerContext) -> web.Application:
    app = web.Application(middlewares=[request_middleware], client_max_size=1024 * 1024)
    app[CONTEXT] = context
    if context.settings.trusted_proxy:
        # Inside request_middleware, so a malformed certificate header gets an OAuth error body.
        app.middlewares.append(proxy_certificate_middleware(context.settings))
    app.cleanup_ctx.append(_background)
    app.on_cleanup.append(_close_services)
    router = app.router
    router.add_get("/.well-known/openid-configuration", metadata_endpoint)
    router.add_get("/.well-known/oauth-authorization-server", metadata_endpoint)
    router.add_get("/jwks", jwks_endpoint)
    router.add_route("*", "/token", token_endpoint)
    router.add_route("*", "/introspect", introspection_endpoint)
    router.add_route("*", "/revoke", revocation_endpoint)
    router.add_get("/healthz", healthz_endpoint)
    router.add_get("/readyz", readyz_endpoint)
    router.add_get("/metrics", metrics_endpoint)
    app.add_routes(RegistrationEndpoints(context.settings).routes())
    app.add_routes(AdminAPI(context.settings).routes())
    return app
