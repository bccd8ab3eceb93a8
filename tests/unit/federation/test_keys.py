"""FederationKeys (SPEC §13): issuers' keys by discovery or jwks_uri, and SPIFFE bundles refreshed
per their hint, served stale while within max_staleness, failing closed after it; fetched over real
TLS from a local test issuer with an injected clock (no sleeping)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from certbound.config import Settings
from certbound.errors import InvalidClientError
from certbound.federation import FederationKeys, IssuerConfig, TrustDomainConfig
from certbound.federation.keys import BUNDLE_REFRESH_DEFAULT
from certbound.jwks import FetchLimits
from certbound.jwks.fetch import JwksFetcher
from certbound.metrics import Metrics
from certbound.reasons import Reason
from tests.federation_kit import TestIssuer
from tests.helpers import FakeClock


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[TestIssuer]:
    async with TestIssuer(tmp_path) as running:
        yield running


@pytest.fixture
async def fetcher(issuer: TestIssuer) -> AsyncIterator[JwksFetcher]:
    fetcher = JwksFetcher(Settings(allow_private_fetch=True, outbound_ca=(issuer.ca_file,)))
    yield fetcher
    await fetcher.close()


def _keys(fetcher: JwksFetcher, clock: FakeClock, metrics: Metrics | None = None) -> FederationKeys:
    return FederationKeys(fetcher, metrics or Metrics(), limits=FetchLimits(cooldown=30), clock=clock)


def _domain(issuer: TestIssuer, **settings: Any) -> TrustDomainConfig:
    return TrustDomainConfig("example.org", bundle_url=issuer.url + "/bundle", **settings)


async def test_issuer_keys_by_discovery_are_cached(issuer: TestIssuer, fetcher: JwksFetcher) -> None:
    keys = _keys(fetcher, FakeClock())
    config = IssuerConfig("ci", issuer.issuer, audience="https://as.example")
    assert [key.kid for key in await keys.issuer_keys(config)] == ["key-1"]
    assert [key.kid for key in await keys.issuer_keys(config)] == ["key-1"]
    assert issuer.requests == {"/.well-known/openid-configuration": 1, "/jwks": 1}


async def test_an_explicit_jwks_uri_skips_discovery(issuer: TestIssuer, fetcher: JwksFetcher) -> None:
    keys = _keys(fetcher, FakeClock())
    config = IssuerConfig("ci", "https://elsewhere.example", audience="x", jwks_uri=issuer.url + "/jwks")
    assert [key.kid for key in await keys.issuer_keys(config)] == ["key-1"]
    assert issuer.requests == {"/jwks": 1}


async def test_a_bundle_is_refetched_after_its_refresh_hint(issuer: TestIssuer, fetcher: JwksFetcher) -> None:
    clock = FakeClock()
    keys = _keys(fetcher, clock)
    issuer.refresh_hint = 120
    domain = _domain(issuer)
    await keys.bundle(domain)
    clock.now += 119
    await keys.bundle(domain)
    assert issuer.requests["/bundle"] == 1
    clock.now += 2
    await keys.bundle(domain)
    assert issuer.requests["/bundle"] == 2


async def test_without_a_hint_the_default_applies_bounded_by_half_the_staleness(
    issuer: TestIssuer, fetcher: JwksFetcher
) -> None:
    clock = FakeClock()
    keys = _keys(fetcher, clock)
    await keys.bundle(_domain(issuer))
    clock.now += BUNDLE_REFRESH_DEFAULT - 1
    await keys.bundle(_domain(issuer))
    assert issuer.requests["/bundle"] == 1
    clock.now += 2
    await keys.bundle(_domain(issuer))
    assert issuer.requests["/bundle"] == 2
    # A short max_staleness makes it refresh earlier than the hint (at half the staleness).
    clock.now += 101
    await keys.bundle(_domain(issuer, max_staleness=200))
    assert issuer.requests["/bundle"] == 3


async def test_a_bundle_is_served_stale_within_max_staleness_then_fails_closed(
    issuer: TestIssuer, fetcher: JwksFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    metrics = Metrics()
    keys = _keys(fetcher, clock, metrics)
    issuer.refresh_hint = 60
    domain = _domain(issuer, max_staleness=600)
    fresh = await keys.bundle(domain)
    issuer.status = 503
    clock.now += 300  # refresh due, fails: the last bundle is still fresh enough
    assert await keys.bundle(domain) is fresh
    clock.now += 299
    assert await keys.bundle(domain) is fresh
    clock.now += 2  # 601 s after the last successful fetch
    with caplog.at_level(logging.WARNING, logger="certbound.federation"):
        for _ in range(2):
            with pytest.raises(InvalidClientError) as refused:
                await keys.bundle(domain)
            assert refused.value.reason is Reason.BUNDLE_STALE
            assert "was last fetched 601 s ago (max_staleness 600 s)" in refused.value.description
    assert sum("its SVIDs are refused" in record.getMessage() for record in caplog.records) == 1
    assert (
        'certbound_spiffe_bundle_stale_refusals_total{trust_domain="example.org"} 2.0'
        in metrics.render().decode()
    )
    # The publisher answers again: once the failure's cooldown is over, the next use fetches it.
    issuer.status = 200
    clock.now += 30
    assert await keys.bundle(domain) is not fresh


async def test_a_bundle_that_never_arrived_is_stale(issuer: TestIssuer, fetcher: JwksFetcher) -> None:
    issuer.status = 404
    with pytest.raises(InvalidClientError, match="was never fetched") as refused:
        await _keys(fetcher, FakeClock()).bundle(_domain(issuer))
    assert refused.value.reason is Reason.BUNDLE_STALE


async def test_a_refresh_on_an_unknown_kid_happens_once_per_cooldown(
    issuer: TestIssuer, fetcher: JwksFetcher
) -> None:
    clock = FakeClock()
    keys = _keys(fetcher, clock)
    domain = _domain(issuer)
    await keys.bundle(domain)
    await keys.bundle(domain, refresh=True)
    await keys.bundle(domain, refresh=True)
    assert issuer.requests["/bundle"] == 2
    clock.now += 31
    await keys.bundle(domain, refresh=True)
    assert issuer.requests["/bundle"] == 3


async def test_the_svid_trust_store_is_built_once_per_bundle(
    issuer: TestIssuer, fetcher: JwksFetcher
) -> None:
    clock = FakeClock()
    keys = _keys(fetcher, clock)
    domain = _domain(issuer)
    bundle = await keys.bundle(domain)
    store = keys.svid_trust(domain, bundle)
    assert keys.svid_trust(domain, bundle) is store
    assert store.anchors == (issuer.svid_ca.cert,)
    clock.now += BUNDLE_REFRESH_DEFAULT + 1
    assert keys.svid_trust(domain, await keys.bundle(domain)) is not store
