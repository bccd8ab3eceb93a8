"""Client public keys from registered `jwks` or `jwks_uri` (RFC 7591 §2, RFC 7517 §5).

Used by private_key_jwt (RFC 7523) and self_signed_tls_client_auth (RFC 8705 §2.2); also holds the
decoded HMAC key of client_secret_jwt clients (OIDC Core §9), so no request decodes a key.

`parse_jwks` validates a JWK Set for registration (public keys only, RSA of 2048 bits or more).
`ClientKeyResolver.keys_for(client)` returns the client's keys as `joserfc.jwk.Key` objects,
decoded once per client and cached. A `jwks_uri` is fetched over https only, within a time limit
and a size cap, trusting the system CAs plus `--outbound-ca`, and never from a loopback, private,
link-local, multicast or reserved address unless `--allow-private-fetch` (the *resolved* address
is checked, and the connection goes to that address, so DNS rebinding cannot slip past). The fetched
set is cached per Cache-Control max-age (bounded), refetched once when an assertion names an
unknown kid, at most once per cooldown per client, so unknown kids cannot make the server a fetch
cannon. Every failure becomes InvalidClientError with a description the client can act on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import re
import socket
import ssl
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import JWKRegistry, Key, OctKey, RSAKey

from certbound.config import Settings
from certbound.errors import ConfigError, InvalidClientError, InvalidClientMetadataError
from certbound.models import Client
from certbound.pki.spki import registered_key_ders
from certbound.reasons import Reason
from certbound.vault import Vault

__all__ = [
    "MIN_RSA_BITS",
    "ClientKeyResolver",
    "FetchLimits",
    "ForbiddenAddressError",
    "is_forbidden_address",
    "parse_jwks",
    "require_key_source",
    "validate_jwks_uri",
]

#: NIST SP 800-131A: smaller RSA keys are refused.
MIN_RSA_BITS = 2048

# RFC 7517 §9.2 / RFC 7518 §6: members that only private (or symmetric) keys have.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_REQUEST_HEADERS = {"Accept": "application/jwk-set+json, application/json", "Accept-Encoding": "identity"}
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-store|no-cache)(?:$|[,\s=])", re.IGNORECASE)


def parse_jwks(value: object) -> list[Key]:
    """Decode a JWK Set of public keys; raise InvalidClientMetadataError naming the problem."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise InvalidClientMetadataError('jwks is not a JWK Set (a JSON object with a "keys" array)')
    keys: list[Key] = []
    for index, member in enumerate(value["keys"]):
        where = f"jwks key {index}"
        if not isinstance(member, dict):
            raise InvalidClientMetadataError(f"{where} is not a JSON object")
        private = [name for name in _PRIVATE_MEMBERS if name in member]
        if private:
            raise InvalidClientMetadataError(
                f"{where} holds private or symmetric key material ({', '.join(private)}): "
                "register public keys only"
            )
        if "kid" in member and not isinstance(member["kid"], str):
            raise InvalidClientMetadataError(f"{where}: kid must be a string")
        try:
            with warnings.catch_warnings():
                # joserfc warns about small RSA keys; they are refused just below instead.
                warnings.simplefilter("ignore", SecurityWarning)
                key = JWKRegistry.import_key(member)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidClientMetadataError(f"{where} does not parse as a JWK: {exc}") from None
        if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
            raise InvalidClientMetadataError(
                f"{where} is an RSA key of {key.public_key.key_size} bits; at least {MIN_RSA_BITS} required"
            )
        keys.append(key)
    if not keys:
        raise InvalidClientMetadataError("jwks holds no keys")
    return keys


def is_forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, multicast, reserved, unspecified or otherwise not global."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return address.is_multicast or not address.is_global


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a URL host names literally; ValueError for forms a resolver might still map
    onto an address (`127.1`, `2130706433`, octal), so those never pass as names."""
    bare = host.strip("[]")
    if ":" in bare or bare.replace(".", "").isdigit():
        return ipaddress.ip_address(bare.split("%", 1)[0])
    return None


def validate_jwks_uri(value: object, *, allow_private: bool) -> str:
    """Registration check of `jwks_uri`: an absolute https URL; a literal address must be public
    unless `allow_private` (names are checked again, resolved, at fetch time)."""
    if not isinstance(value, str):
        raise InvalidClientMetadataError("jwks_uri must be a string")
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidClientMetadataError("jwks_uri is not a valid URL") from None
    if parts.scheme != "https" or not host or port == 0:
        raise InvalidClientMetadataError("jwks_uri must be an https URL")
    if parts.fragment or parts.username is not None or parts.password is not None:
        raise InvalidClientMetadataError("jwks_uri must not carry a fragment or user information")
    try:
        literal = _literal_address(host)
    except ValueError:
        raise InvalidClientMetadataError(f"jwks_uri host {host} is not a valid address") from None
    if literal is not None and not allow_private and is_forbidden_address(literal):
        raise InvalidClientMetadataError(f"jwks_uri host {host} is not a public address")
    return value


def require_key_source(metadata: Mapping[str, Any], settings: Settings) -> None:
    """SPEC §9: exactly one of `jwks` and `jwks_uri`; inline keys parse; the URI is https."""
    has_jwks, has_uri = metadata.get("jwks") is not None, metadata.get("jwks_uri") is not None
    if has_jwks == has_uri:
        which = "both" if has_jwks else "neither"
        raise InvalidClientMetadataError(
            f"jwks: exactly one of jwks and jwks_uri is required ({which} given)"
        )
    if has_jwks:
        parse_jwks(metadata["jwks"])
    else:
        validate_jwks_uri(metadata["jwks_uri"], allow_private=settings.allow_private_fetch)


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


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds on jwks_uri fetching. Tests may give a `ClientKeyResolver` smaller ones."""

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


@dataclass(slots=True)
class _Cached:
    source: object  # the inline jwks value, or the jwks_uri, the keys came from
    keys: list[Key]
    expires_at: float = math.inf
    refreshed_at: float = -math.inf


@dataclass(frozen=True, slots=True)
class _Failure:
    uri: str
    message: str
    until: float


class _FetchError(Exception):
    pass


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


class ClientKeyResolver:
    """The public keys of clients, from inline `jwks` or a fetched `jwks_uri`, cached per client.

    One per server process (`ServerContext.client_keys`); `close()` releases its HTTP session.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        limits: FetchLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10000,
    ) -> None:
        self.limits = limits or FetchLimits()
        self._allow_private = settings.allow_private_fetch
        self._ssl = _build_ssl_context(settings)
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, _Cached] = {}
        self._secrets: dict[str, tuple[bytes, OctKey]] = {}
        self._spki: dict[int, tuple[list[Key], frozenset[bytes]]] = {}
        self._failures: dict[str, _Failure] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[list[Key]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._resolver: _PublicOnlyResolver | None = None

    async def keys_for(self, client: Client, *, refresh: bool = False) -> list[Key]:
        """The client's public keys. `refresh=True` (an assertion named an unknown kid) refetches a
        `jwks_uri` unless one was refetched for this client within the cooldown."""
        jwks = client.metadata.get("jwks")
        if jwks is not None:
            return self._inline_keys(client.client_id, jwks)
        uri = client.metadata.get("jwks_uri")
        if isinstance(uri, str):
            return await self._remote_keys(client.client_id, uri, refresh=refresh)
        raise InvalidClientError("client has registered neither jwks nor jwks_uri", reason=Reason.NO_KEYS)

    async def public_key_ders(self, client: Client, *, refresh: bool = False) -> frozenset[bytes]:
        """The DER SubjectPublicKeyInfo of each of the client's keys (self_signed_tls_client_auth
        compares these), computed once per key set rather than once per request."""
        keys = await self.keys_for(client, refresh=refresh)
        memo = self._spki.get(id(keys))
        if memo is None or memo[0] is not keys:  # keyed by identity; holding `keys` pins the id
            if len(self._spki) >= self._max_entries:
                self._spki.clear()
            memo = self._spki[id(keys)] = (keys, registered_key_ders(keys))
        return memo[1]

    def hmac_key_for(self, client: Client, vault: Vault) -> OctKey:
        """client_secret_jwt: the client's secret as an HMAC key, decrypted and decoded once per
        secret (a rotated secret has a new ciphertext, so it is never served stale)."""
        ciphertext = client.secret_ciphertext
        if ciphertext is None:
            raise InvalidClientError(
                "client has no secret to verify a client_secret_jwt assertion", reason=Reason.NO_SECRET
            )
        cached = self._secrets.get(client.client_id)
        if cached is not None and cached[0] == ciphertext:
            return cached[1]
        secret = vault.decrypt(ciphertext, context=client.client_id.encode("utf-8"))
        try:
            with warnings.catch_warnings():
                # A secret that merely looks like a key is still the secret the admin chose.
                warnings.simplefilter("ignore", SecurityWarning)
                key = OctKey.import_key(secret)
        except ValueError:
            # joserfc refuses public keys (PEM, DER, SSH, certificates) as HMAC keys: anyone holding
            # the public key could compute the MAC.
            raise InvalidClientError(
                "client secret is a public key and cannot key an HMAC", reason=Reason.SECRET_UNUSABLE
            ) from None
        if len(self._secrets) >= self._max_entries:
            self._secrets.clear()
        self._secrets[client.client_id] = (ciphertext, key)
        return key

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    def _remember(self, client_id: str, entry: _Cached) -> None:
        if len(self._cache) >= self._max_entries:
            # Registration may be open: bound what many clients can make us hold.
            self._cache.clear()
        self._cache[client_id] = entry

    def _inline_keys(self, client_id: str, jwks: object) -> list[Key]:
        cached = self._cache.get(client_id)
        if cached is not None and (cached.source is jwks or cached.source == jwks):
            # The client cache reloads the metadata as new objects: keep the newest, so the next
            # request matches by identity instead of comparing the whole set.
            cached.source = jwks
            return cached.keys
        try:
            keys = parse_jwks(jwks)
        except InvalidClientMetadataError as exc:
            raise InvalidClientError(
                f"client's registered {exc.description}", reason=Reason.JWKS_INVALID
            ) from None
        self._remember(client_id, _Cached(jwks, keys))
        return keys

    async def _remote_keys(self, client_id: str, uri: str, *, refresh: bool) -> list[Key]:
        now = self._clock()
        cached = self._cache.get(client_id)
        forced = False
        if cached is not None and cached.source == uri and now < cached.expires_at:
            if not refresh or now - cached.refreshed_at < self.limits.cooldown:
                return cached.keys
            cached.refreshed_at = now
            forced = True
        failure = self._failures.get(client_id)
        if failure is not None and failure.uri == uri and now < failure.until and not forced:
            raise InvalidClientError(failure.message, reason=Reason.JWKS_UNAVAILABLE)
        key = (client_id, uri)
        task = self._inflight.get(key)
        if task is None:
            # Concurrent requests for one client share one fetch.
            task = asyncio.create_task(self._fetch_and_remember(client_id, uri, forced=forced))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._fetch_done(key, done))
        try:
            # A cancelled request must not cancel the fetch the others wait for.
            return await asyncio.shield(task)
        except InvalidClientError as exc:
            # Each waiter gets its own exception: the error path annotates the one it handles.
            raise InvalidClientError(exc.description, reason=exc.reason) from None

    def _fetch_done(self, key: tuple[str, str], task: asyncio.Task[list[Key]]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not logged as lost

    async def _fetch_and_remember(self, client_id: str, uri: str, *, forced: bool) -> list[Key]:
        try:
            keys, ttl = await self._fetch(uri)
        except _FetchError as exc:
            message = f"cannot use the client's jwks_uri: {exc}"
            if len(self._failures) >= self._max_entries:
                self._failures.clear()
            self._failures[client_id] = _Failure(uri, message, self._clock() + self.limits.cooldown)
            raise InvalidClientError(message, reason=Reason.JWKS_UNAVAILABLE) from None
        now = self._clock()
        self._failures.pop(client_id, None)
        self._remember(
            client_id, _Cached(uri, keys, expires_at=now + ttl, refreshed_at=now if forced else -math.inf)
        )
        return keys

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._resolver = _PublicOnlyResolver(allow_private=self._allow_private)
            connector = aiohttp.TCPConnector(
                ssl=self._ssl, resolver=self._resolver, limit=64, limit_per_host=4
            )
            # No proxies from the environment, no redirects, no decompression (see _fetch).
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)
        return self._session

    async def _fetch(self, uri: str) -> tuple[list[Key], float]:
        limits = self.limits
        try:
            validate_jwks_uri(uri, allow_private=self._allow_private)
        except InvalidClientMetadataError as exc:
            raise _FetchError(exc.description) from None
        try:
            async with asyncio.timeout(limits.timeout):
                async with self._http().get(
                    uri,
                    allow_redirects=False,
                    # Identity encoding: the size cap is on what we parse, nothing is inflated.
                    headers=_REQUEST_HEADERS,
                ) as response:
                    if response.status != 200:
                        raise _FetchError(f"{uri} answered HTTP {response.status}")
                    body = await _read_capped(response, limits.max_bytes)
                    ttl = _ttl(response.headers.get("Cache-Control"), limits)
        except TimeoutError:
            raise _FetchError(f"{uri} did not answer within {limits.timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _FetchError(f"{uri}: TLS certificate not trusted ({exc.certificate_error})") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ForbiddenAddressError):
                raise _FetchError(
                    f"{uri}: {exc.os_error} (private addresses need --allow-private-fetch)"
                ) from None
            raise _FetchError(f"cannot connect to {uri}: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise _FetchError(f"fetching {uri} failed: {exc}") from None
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise _FetchError(f"{uri} did not return JSON") from None
        try:
            return parse_jwks(document), ttl
        except InvalidClientMetadataError as exc:
            raise _FetchError(f"{uri}: {exc.description}") from None


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    too_large = f"{response.url} returned more than {max_bytes} bytes"
    if response.content_length is not None and response.content_length > max_bytes:
        raise _FetchError(too_large)
    body = bytearray()
    async for chunk in response.content.iter_chunked(16384):
        body += chunk
        if len(body) > max_bytes:
            raise _FetchError(too_large)
    return bytes(body)
