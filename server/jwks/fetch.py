"""Fetching a client's `jwks_uri` (RFC 7591 §2), bounded in time, size and destination; the same
fetcher serves workload identity (SPEC §13): federated issuers' discovery documents and key sets,
SPIFFE bundles. One fetcher for all, one set of rules.

A fetch goes over https only, trusting the system CAs plus `--outbound-ca`, within `FetchLimits`
(one deadline for connect, TLS, headers and body; a body cap checked while reading, with no
decompression and no redirects), and never to a forbidden address unless `--allow-private-fetch`:
the *resolved* address is checked and the connection goes to that address, so DNS rebinding cannot
slip past (certbound.jwks.addresses). The body must be a JWK Set within certbound.jwks.keyset.

The client chose the URL, so what went wrong is not its business beyond "could not be fetched":
telling connection refused from a timeout or a TLS failure would make the server a port scanner
for whoever registers a client. `FetchError.detail` (for the server log) says what happened; the
client only ever sees `FETCH_FAILED`, or, for a JWK Set that was fetched but is out of policy, the
policy rule it breaks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from joserfc.jwk import Key

from certbound.config import Settings
from certbound.errors import ConfigError, InvalidClientMetadataError
from certbound.jwks.addresses import is_forbidden_address, validate_jwks_uri
from certbound.jwks.keyset import parse_jwks

__all__ = ["FETCH_FAILED", "FetchError", "FetchLimits", "ForbiddenAddressError", "JwksFetcher"]

#: What the client is told about any fetch failure: the same words whatever happened.
FETCH_FAILED = "it could not be fetched as a JWK Set"

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-store|no-cache)(?:$|[,\s=])", re.IGNORECASE)
_REQUEST_HEADERS = {"Accept": "application/jwk-set+json, application/json", "Accept-Encoding": "identity"}


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds on jwks_uri fetching and refetching. Tests may give a `ClientKeyResolver` smaller ones."""

    #: Seconds for the whole fetch: connect, TLS, headers and body.
    timeout: float = 5.0
    #: Largest body read; reading stops as soon as it is exceeded.
    max_bytes: int = 64 * 1024
    #: Per client: minimum seconds between two unknown-kid refetches, and the wait before
    #: retrying after a failed fetch.
    cooldown: float = 30.0
    #: Cache lifetime without Cache-Control max-age, and the bounds put on max-age.
    default_ttl: float = 300.0
    min_ttl: float = 60.0
    max_ttl: float = 86400.0


class FetchError(Exception):
    """The fetch failed: `detail` for the log, `description` for the client."""

    def __init__(self, detail: str, description: str = FETCH_FAILED) -> None:
        super().__init__(detail)
        self.detail = detail
        self.description = description


class ForbiddenAddressError(OSError):
    """The jwks_uri host resolves only to addresses the server must not fetch from (SSRF)."""


class _PublicOnlyResolver(AbstractResolver):
    """Resolve with the default resolver, then drop forbidden addresses. aiohttp connects to what
    this returns, so the address checked is the address used."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        allowed = [r for r in results if not is_forbidden_address(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise ForbiddenAddressError(f"{host} resolves only to non-public addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _ttl(cache_control: str | None, limits: FetchLimits) -> float:
    if not cache_control:
        return limits.default_ttl
    if _NO_CACHE.search(cache_control):
        return limits.min_ttl
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return limits.default_ttl
    return min(max(float(match.group(1)), limits.min_ttl), limits.max_ttl)


def _build_ssl_context(settings: Settings) -> ssl.SSLContext:
    # System store; OpenSSL reads SSL_CERT_FILE (and SSL_CERT_DIR) itself when they are set.
    context = ssl.create_default_context()
    for path in settings.outbound_ca:
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load --outbound-ca {path}: {exc}") from None
    return context


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    too_large = f"{response.url} returned more than {max_bytes} bytes"
    if response.content_length is not None and response.content_length > max_bytes:
        raise FetchError(too_large)
    body = bytearray()
    async for chunk in response.content.iter_chunked(16384):
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(too_large)
    return bytes(body)


def _json_object(uri: str, body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FetchError(f"{uri} did not return JSON") from None
    if not isinstance(document, dict):
        raise FetchError(f"{uri} did not return a JSON object")
    return document


def _jwk_set(uri: str, document: dict[str, Any]) -> list[Key]:
    if not isinstance(document.get("keys"), list):
        raise FetchError(f"{uri} did not return a JWK Set")
    try:
        return parse_jwks(document)
    except InvalidClientMetadataError as exc:
        raise FetchError(f"{uri}: {exc.description}", f"its JWK Set is refused: {exc.description}") from None


class JwksFetcher:
    """One HTTP client session for every jwks_uri fetch of a process; `close()` releases it."""

    def __init__(self, settings: Settings) -> None:
        self._allow_private = settings.allow_private_fetch
        self._ssl = _build_ssl_context(settings)
        self._session: aiohttp.ClientSession | None = None
        self._resolver: _PublicOnlyResolver | None = None

    async def fetch(self, uri: str, limits: FetchLimits) -> tuple[list[Key], float]:
        """The keys at `uri` and how long they may be cached, in seconds; raises FetchError."""
        document, ttl = await self.fetch_json(uri, limits)
        return _jwk_set(uri, document), ttl

    async def fetch_json(self, uri: str, limits: FetchLimits) -> tuple[dict[str, Any], float]:
        """The JSON object at `uri` and how long it may be cached, in seconds; raises FetchError."""
        try:
            validate_jwks_uri(uri, allow_private=self._allow_private)
        except InvalidClientMetadataError as exc:
            raise FetchError(f"{exc.description} (private addresses need --allow-private-fetch)") from None
        try:
            async with asyncio.timeout(limits.timeout):
                async with self._http().get(
                    uri,
                    allow_redirects=False,
                    # Identity encoding: the size cap is on what we parse, nothing is inflated.
                    headers=_REQUEST_HEADERS,
                ) as response:
                    if response.status != 200:
                        raise FetchError(f"{uri} answered HTTP {response.status}")
                    body = await _read_capped(response, limits.max_bytes)
                    ttl = _ttl(response.headers.get("Cache-Control"), limits)
        except TimeoutError:
            raise FetchError(f"{uri} did not answer within {limits.timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise FetchError(f"{uri}: TLS certificate not trusted ({exc.certificate_error})") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ForbiddenAddressError):
                raise FetchError(
                    f"{uri}: {exc.os_error} (private addresses need --allow-private-fetch)"
                ) from None
            raise FetchError(f"cannot connect to {uri}: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"fetching {uri} failed: {exc}") from None
        return _json_object(uri, body), ttl

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._resolver = _PublicOnlyResolver(allow_private=self._allow_private)
            connector = aiohttp.TCPConnector(
                ssl=self._ssl, resolver=self._resolver, limit=64, limit_per_host=4
            )
            # No proxies from the environment, no redirects, no decompression (see fetch).
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
