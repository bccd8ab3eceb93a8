"""The services one server process shares between requests, reachable from handlers by AppKey."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from server.clientkeys import ClientKeyResolver
from server.clients import ClientCache
from server.config import Settings
from server.keys import KeyRing
from server.metrics import Metrics
from server.pki.trust import ClientTrust
from server.store import Store
from server.tokens import AccessTokenIssuer
from server.vault import Vault

__all__ = ["CONTEXT", "ServerContext"]


@dataclass(frozen=True)
class ServerContext:
    settings: Settings
    store: Store
    vault: Vault
    keys: KeyRing
    clients: ClientCache
    tokens: AccessTokenIssuer
    metrics: Metrics
    client_keys: ClientKeyResolver
    #: The client CA trust store for tls_client_auth (RFC 8705 §2.1), reloaded on SIGHUP.
    trust: ClientTrust


CONTEXT = web.AppKey("certbound.context", ServerContext)
