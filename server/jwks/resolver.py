"""Client public keys from registered `jwks` or `jwks_uri` (RFC 7591 §2, RFC 7517 §5), per client.

Used by private_key_jwt (RFC 7523) and self_signed_tls_client_auth (RFC 8705 §2.2); also holds the
decoded HMAC key of client_secret_jwt clients (OIDC Core §9), so no request decodes a key.

`ClientKeyResolver.keys_for(client)` returns the client's keys as `joserfc.jwk.Key` objects,
decoded once per client (certbound.jwks.keyset: bounded and within the key policy) and cached. A
`jwks_uri` is fetched by certbound.jwks.fetch; the fetched set is cached per Cache-Control max-age
(bounded), refetched once when an assertion names an unknown kid, at most once per cooldown per
client, so unknown kids cannot make the server a fetch cannon. A failed fetch is remembered for
the cooldown too. Every failure becomes InvalidClientError; what went wrong with a fetch is logged,
and the client is told only that its jwks_uri could not be used (certbound.jwks.fetch says why).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from joserfc.errors import SecurityWarning
from joserfc.jwk import Key, OctKey

from certbound.config import Settings
from certbound.errors import InvalidClientError, InvalidClientMetadataError
from certbound.jwks.fetch import FetchError, FetchLimits, JwksFetcher
from certbound.jwks.keyset import parse_jwks
from certbound.models import Client
from certbound.pki.spki import registered_key_ders
from certbound.reasons import Reason
from certbound.vault import Vault

__all__ = ["ClientKeyResolver"]

log = logging.getLogger("certbound.jwks")


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
        self._fetcher = JwksFetcher(settings)
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, _Cached] = {}
        self._secrets: dict[str, tuple[bytes, OctKey]] = {}
        self._spki: dict[int, tuple[list[Key], frozenset[bytes]]] = {}
        self._failures: dict[str, _Failure] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[list[Key]]] = {}

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
        await self._fetcher.close()

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
            keys, ttl = await self._fetcher.fetch(uri, self.limits)
        except FetchError as exc:
            log.warning("jwks_uri of client %r refused: %s", client_id, exc.detail)
            message = f"cannot use the client's jwks_uri: {exc.description}"
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
