"""The keys workload tokens are verified with (SPEC §13): federated issuers' JWK Sets and SPIFFE
bundles, static (read from the federation file's `jwks_file` / `bundle_file`) or remote.

Remote documents go through the same fetcher and cache as clients' `jwks_uri`s
(certbound.jwks.fetch and .remote: https only, SSRF guard, size and time limits, caching,
single-flight, one early refetch per cooldown on an unknown kid), fetched when first needed:

- an issuer without `jwks_uri` publishes it in its OpenID discovery document (OpenID Connect
  Discovery 1.0 §4), whose `issuer` must be the configured one (§4.3);
- a `bundle_url` is fetched again after its `spiffe_refresh_hint` (default 300 s), and at the latest
  after half its `max_staleness`. A failed refresh keeps serving the last bundle until it is
  `max_staleness` old, counted from the last successful fetch; then, and when it was never fetched,
  the trust domain fails closed, JWT-SVIDs and X.509-SVIDs alike: a warning when it turns stale,
  and `certbound_spiffe_bundle_stale_refusals_total{trust_domain}` for each refusal.

X.509-SVIDs are validated against a `TrustStore` of the bundle's x509-svid authorities
(certbound.pki.trust), built once per bundle, never against `--client-ca`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import NoReturn

from joserfc.jwk import Key

from certbound.errors import InvalidClientError
from certbound.federation.bundle import SpiffeBundle, parse_bundle
from certbound.federation.config import IssuerConfig, TrustDomainConfig
from certbound.jwks.fetch import FetchError, FetchLimits, JwksFetcher
from certbound.jwks.remote import Fetched, RemoteDocuments, RemoteUnavailable
from certbound.metrics import Metrics
from certbound.pki.trust import TrustStore
from certbound.reasons import Reason

__all__ = ["BUNDLE_REFRESH_DEFAULT", "FederationKeys"]

log = logging.getLogger("certbound.federation")

#: Seconds a fetched bundle is used before it is fetched again, without a spiffe_refresh_hint.
BUNDLE_REFRESH_DEFAULT = 300
#: Bounds on a publisher's spiffe_refresh_hint: not hammered, not forgotten.
_HINT_BOUNDS = (5, 86400)


async def _load_discovery(
    fetcher: JwksFetcher, uri: str, limits: FetchLimits
) -> tuple[tuple[str, str], float]:
    """(the document's issuer, its jwks_uri) from an OpenID discovery document."""
    document, ttl = await fetcher.fetch_json(uri, limits)
    issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
    if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
        raise FetchError(f"{uri} is not an OpenID discovery document (no issuer or jwks_uri)")
    return (issuer, jwks_uri), ttl


async def _load_jwk_set(fetcher: JwksFetcher, uri: str, limits: FetchLimits) -> tuple[list[Key], float]:
    return await fetcher.fetch(uri, limits)


async def _load_bundle(fetcher: JwksFetcher, uri: str, limits: FetchLimits) -> tuple[SpiffeBundle, float]:
    document, _ = await fetcher.fetch_json(uri, limits)
    try:
        bundle = parse_bundle(document)
    except ValueError as exc:
        raise FetchError(f"{uri}: {exc}") from None
    hint = BUNDLE_REFRESH_DEFAULT if bundle.refresh_hint is None else bundle.refresh_hint
    return bundle, float(min(max(hint, _HINT_BOUNDS[0]), _HINT_BOUNDS[1]))


class FederationKeys:
    """The verification material of the configured issuers and trust domains, for one process."""

    def __init__(
        self,
        fetcher: JwksFetcher,
        metrics: Metrics,
        *,
        limits: FetchLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        limits = limits or FetchLimits()
        self._clock = clock
        self._metrics = metrics
        self._discovery: RemoteDocuments[tuple[str, str]] = RemoteDocuments(
            fetcher,
            _load_discovery,
            label=lambda name: f"OpenID discovery of issuer {name}",
            limits=limits,
            clock=clock,
        )
        self._jwks: RemoteDocuments[list[Key]] = RemoteDocuments(
            fetcher,
            _load_jwk_set,
            label=lambda name: f"jwks_uri of issuer {name}",
            limits=limits,
            clock=clock,
        )
        self._bundles: RemoteDocuments[SpiffeBundle] = RemoteDocuments(
            fetcher,
            _load_bundle,
            label=lambda domain: f"bundle_url of trust domain {domain}",
            limits=limits,
            clock=clock,
        )
        self._stale: set[str] = set()
        self._svid_stores: dict[str, tuple[SpiffeBundle, TrustStore]] = {}

    async def issuer_keys(self, issuer: IssuerConfig, *, refresh: bool = False) -> list[Key]:
        """The issuer's public keys; `refresh` (an unknown kid) refetches a remote set once per
        cooldown. InvalidClientError when they cannot be had."""
        if issuer.jwks is not None:
            return list(issuer.jwks)
        uri = issuer.jwks_uri or await self._discovered_jwks_uri(issuer)
        try:
            fetched = await self._jwks.get(issuer.name, uri, refresh=refresh)
        except RemoteUnavailable:
            raise InvalidClientError(
                f"the keys of issuer {issuer.name} could not be fetched",
                reason=Reason.ISSUER_KEYS_UNAVAILABLE,
            ) from None
        return fetched.value

    async def _discovered_jwks_uri(self, issuer: IssuerConfig) -> str:
        try:
            fetched = await self._discovery.get(issuer.name, issuer.discovery_uri)
        except RemoteUnavailable:
            raise InvalidClientError(
                f"the OpenID discovery document of issuer {issuer.name} could not be fetched",
                reason=Reason.ISSUER_KEYS_UNAVAILABLE,
            ) from None
        published, jwks_uri = fetched.value
        if published != issuer.issuer:
            # OpenID Connect Discovery 1.0 §4.3: the document must be the issuer's own.
            log.warning("OpenID discovery of issuer %s names another issuer: refused", issuer.name)
            raise InvalidClientError(
                f"the OpenID discovery document of issuer {issuer.name} names another issuer",
                reason=Reason.ISSUER_KEYS_UNAVAILABLE,
            )
        return jwks_uri

    async def bundle(self, domain: TrustDomainConfig, *, refresh: bool = False) -> SpiffeBundle:
        """The trust domain's bundle, fresh enough to trust; InvalidClientError (bundle_stale) when
        it was never fetched or not refreshed for `max_staleness`."""
        if domain.bundle is not None:
            return domain.bundle
        assert domain.bundle_url is not None  # the federation file has one or the other
        fetched: Fetched[SpiffeBundle] | None
        try:
            fetched = await self._bundles.get(
                domain.trust_domain, domain.bundle_url, refresh=refresh, max_age=domain.max_staleness / 2
            )
        except RemoteUnavailable as exc:
            fetched = exc.last
        if fetched is None or self._clock() - fetched.fetched_at > domain.max_staleness:
            self._refuse_stale(domain, math.inf if fetched is None else self._clock() - fetched.fetched_at)
        self._stale.discard(domain.trust_domain)
        return fetched.value

    def _refuse_stale(self, domain: TrustDomainConfig, age: float) -> NoReturn:
        name = domain.trust_domain
        since = "was never fetched" if age == math.inf else f"was last fetched {age:.0f} s ago"
        if name not in self._stale:
            self._stale.add(name)
            log.warning(
                "the bundle of trust domain %s %s (max_staleness %d s): its SVIDs are refused until "
                "a fetch succeeds",
                name,
                since,
                domain.max_staleness,
            )
        self._metrics.bundle_stale(name)
        raise InvalidClientError(
            f"the bundle of trust domain {name} is stale: it {since} "
            f"(max_staleness {domain.max_staleness} s)",
            reason=Reason.BUNDLE_STALE,
        )

    def svid_trust(self, domain: TrustDomainConfig, bundle: SpiffeBundle) -> TrustStore:
        """The trust store of `bundle`'s x509-svid authorities (built once per bundle)."""
        cached = self._svid_stores.get(domain.trust_domain)
        if cached is None or cached[0] is not bundle:
            cached = self._svid_stores[domain.trust_domain] = (bundle, TrustStore(bundle.x509_authorities))
        return cached[1]

    def close(self) -> None:
        for documents in (self._discovery, self._jwks, self._bundles):
            documents.cancel()
