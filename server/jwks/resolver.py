"""Client public keys from registered `jwks` or `jwks_uri` (RFC 7591 §2, RFC 7517 §5), per client.

Used by private_key_jwt (RFC 7523) and self_signed_tls_client_auth (RFC 8705 §2.2); also holds the
decoded HMAC key of client_secret_jwt clients (OIDC Core §9), so no request decodes a key.

`ClientKeyResolver.keys_for(client)` returns the client's keys as `joserfc.jwk.Key` objects,
decoded once per client (certbound.jwks.keyset: bounded and within the key policy) and cached. A
`jwks_uri` is fetched by certbound.jwks.fetch and cached by certbound.jwks.remote: per
Cache-Control max-age (bounded), refetched once when an assertion names an unknown kid, at most once
per cooldown per client, so unknown kids cannot make the server a fetch cannon. A failed fetch is
remembered for the cooldown too. Every failure becomes InvalidClientError; what went wrong with a
fetch is logged, and the client is told only that its jwks_uri could not be used
(certbound.jwks.fetch says why).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

from joserfc.errors import SecurityWarning
from joserfc.jwk import Key, OctKey

from certbound.config import Settings
from certbound.errors import InvalidClientError, InvalidClientMetadataError
from certbound.jwks.fetch import FetchLimits, JwksFetcher
from certbound.jwks.keyset import parse_jwks
from certbound.jwks.remote import RemoteDocuments, RemoteUnavailable
from certbound.models import Client
from certbound.pki.spki import registered_key_ders
from certbound.reasons import Reason
from certbound.vault import Vault

__all__ = ["ClientKeyResolver"]


async def _load_jwk_set(fetcher: JwksFetcher, uri: str, limits: FetchLimits) -> tuple[list[Key], float]:
    return await fetcher.fetch(uri, limits)


class ClientKeyResolver:
    """The public keys of clients, from inline `jwks` or a fetched `jwks_uri`, cached per client.

    One per server process (`ServerContext.client_keys`); `fetcher` is the process's one HTTP
    client for remote documents (certbound.jwks.fetch), which `close()` releases.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        limits: FetchLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10000,
        fetcher: JwksFetcher | None = None,
    ) -> None:
        self.fetcher = fetcher or JwksFetcher(settings)
        self._max_entries = max_entries
        self._remote: RemoteDocuments[list[Key]] = RemoteDocuments(
            self.fetcher,
            _load_jwk_set,
            label=lambda client_id: f"jwks_uri of client {client_id!r}",
            limits=limits or FetchLimits(),
            clock=clock,
            max_entries=max_entries,
        )
        #: client_id -> (the inline jwks value the keys came from, the keys)
        self._inline: dict[str, tuple[object, list[Key]]] = {}
        self._secrets: dict[str, tuple[bytes, OctKey]] = {}
        self._spki: dict[int, tuple[list[Key], frozenset[bytes]]] = {}

    @property
    def limits(self) -> FetchLimits:
        """The bounds on fetching jwks_uris (tests may tighten them on a running server)."""
        return self._remote.limits

    @limits.setter
    def limits(self, limits: FetchLimits) -> None:
        self._remote.limits = limits

    async def keys_for(self, client: Client, *, refresh: bool = False) -> list[Key]:
        """The client's public keys. `refresh=True` (an assertion named an unknown kid) refetches a
        `jwks_uri` unless one was refetched for this client within the cooldown."""
        jwks = client.metadata.get("jwks")
        if jwks is not None:
            return self._inline_keys(client.client_id, jwks)
        uri = client.metadata.get("jwks_uri")
        if isinstance(uri, str):
            try:
                fetched = await self._remote.get(client.client_id, uri, refresh=refresh)
            except RemoteUnavailable as exc:
                raise InvalidClientError(
                    f"cannot use the client's jwks_uri: {exc.description}", reason=Reason.JWKS_UNAVAILABLE
                ) from None
            return fetched.value
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
        self._remote.cancel()
        await self.fetcher.close()

    def _inline_keys(self, client_id: str, jwks: object) -> list[Key]:
        cached = self._inline.get(client_id)
        if cached is not None and (cached[0] is jwks or cached[0] == jwks):
            # The client cache reloads the metadata as new objects: keep the newest, so the next
            # request matches by identity instead of comparing the whole set.
            self._inline[client_id] = (jwks, cached[1])
            return cached[1]
        try:
            keys = parse_jwks(jwks)
        except InvalidClientMetadataError as exc:
            raise InvalidClientError(
                f"client's registered {exc.description}", reason=Reason.JWKS_INVALID
            ) from None
        if len(self._inline) >= self._max_entries:
            # Registration may be open: bound what many clients can make us hold.
            self._inline.clear()
        self._inline[client_id] = (jwks, keys)
        return keys
