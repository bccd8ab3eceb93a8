"""The authorization server's published signing keys, as a resource server keeps them
(RFC 7517 §5 JWK Set, found through RFC 8414 `jwks_uri`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from certbound.resource.authserver import AuthorizationServerError

__all__ = ["PublishedKeys", "parse_jwks"]

log = logging.getLogger("certbound.resource")


class PublishedKeys:
    """The AS's JWK Set: fetched on first use and when older than `max_age`, and refetched on an
    unknown kid at most once per `cooldown` (a flood of made-up kids is not a flood of fetches).
    When a refetch fails, the keys fetched before stay in use."""

    def __init__(self, fetch: Callable[[], Awaitable[object]], *, cooldown: float, max_age: float) -> None:
        self._fetch = fetch
        self._cooldown = cooldown
        self._max_age = max_age
        self._keys: dict[str, Key] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._failure: AuthorizationServerError | None = None
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Key | None:
        key = self._keys.get(kid)
        if key is None or time.monotonic() - self._fetched_at > self._max_age:
            await self._refresh()
            key = self._keys.get(kid)
        return key

    async def _refresh(self) -> None:
        async with self._lock:
            # Whoever waited on the lock finds the fetch just made and does not repeat it.
            if time.monotonic() - self._attempted_at < self._cooldown:
                if self._failure is not None and not self._keys:
                    raise self._failure
                return
            self._attempted_at = time.monotonic()
            try:
                self._keys = parse_jwks(await self._fetch())
            except AuthorizationServerError as exc:
                self._failure = exc
                if not self._keys:
                    raise
                log.warning("keeping the JWK Set fetched before: %s", exc)
                return
            self._fetched_at, self._failure = self._attempted_at, None


def parse_jwks(document: object) -> dict[str, Key]:
    """Signature keys by kid (RFC 7517 §5); keys this verifier cannot use are skipped."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise AuthorizationServerError("the JWK Set is not a JSON object with a keys array")
    keys: dict[str, Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        # Public-key types only: a shared secret has no business in a published key set.
        if entry.get("kty") not in ("RSA", "EC", "OKP") or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry["kid"]] = JWKRegistry.import_key(entry)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("skipping JWK %r the verifier cannot use: %s", entry["kid"], exc)
    return keys
