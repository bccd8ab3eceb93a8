"""The services one server process shares between requests, reachable from handlers by AppKey."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from certbound.clients import ClientCache
from certbound.config import Settings
from certbound.cpupool import CpuPool
from certbound.dpop import NonceIssuer, ProofChecker
from certbound.federation import Federation, FederationKeys
from certbound.jwks import ClientKeyResolver
from certbound.keys import KeyRing
from certbound.legacyaudience import LegacyAudienceUses
from certbound.metrics import Metrics
from certbound.pki.trust import ClientTrust
from certbound.secretcheck import SecretChecker
from certbound.store import Store
from certbound.tokens import AccessTokenIssuer
from certbound.vault import Vault

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
    #: Verifies presented client secrets; holds the slow-hash concurrency cap and what verified.
    secret_checker: SecretChecker
    #: Workload identity (SPEC §13): the --federation configuration (reloaded on SIGHUP) and the
    #: issuers' keys and SPIFFE bundles, fetched by the same fetcher as clients' jwks_uris.
    federation: Federation
    federation_keys: FederationKeys
    #: Assertions accepted only because of --assertion-audience legacy, counted per client.
    legacy_audience: LegacyAudienceUses
    #: Path building and client-key signature checks run here, off the event loop (issue 9).
    cpu: CpuPool = field(default_factory=CpuPool)
    #: DPoP proofs at the token endpoint (RFC 9449), with --clock-skew as their iat window.
    proofs: ProofChecker = field(default_factory=ProofChecker)
    #: Server nonces proofs must carry (--dpop-nonce, RFC 9449 §8); None when not required.
    dpop_nonces: NonceIssuer | None = None


CONTEXT = web.AppKey("certbound.context", ServerContext)
