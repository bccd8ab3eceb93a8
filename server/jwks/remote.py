"""Documents fetched over https and cached per owner (RFC 7517 §5 key sets, OpenID Connect
Discovery §4, SPIFFE bundles): the one caching policy for every remote document the server reads.

An owner (a client_id, a federated issuer's name, a SPIFFE trust domain) has at most one cached
document per URL. `RemoteDocuments.get` answers from the cache until the document's time-to-live
runs out (Cache-Control max-age, or what the loader says, bounded by certbound.jwks.fetch), fetches
it once for all concurrent callers (single flight), refetches it early when asked (`refresh`, e.g.
an unknown kid) at most once per cooldown per owner, and remembers a failed fetch for the cooldown,
so neither unknown kids nor a dead URL can make the server a fetch cannon. A failure carries the
last good document (`RemoteUnavailable.last`), whatever its age: a caller that may serve a stale
copy for a while (a SPIFFE bundle within its `max_staleness`) decides. Every failed fetch is logged
once, with what went wrong (certbound.jwks.fetch says why the client hears less).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from certbound.jwks.fetch import FetchError, FetchLimits, JwksFetcher

__all__ = ["Fetched", "Loader", "RemoteDocuments", "RemoteUnavailable"]

log = logging.getLogger("certbound.jwks")

T = TypeVar("T")

#: Fetches and parses one document: (value, seconds it may be cached); raises FetchError.
Loader = Callable[[JwksFetcher, str, FetchLimits], Awaitable[tuple[T, float]]]


@dataclass(slots=True)
class Fetched(Generic[T]):
    """A document as last fetched; times are of the cache's clock."""

    uri: str
    value: T
    fetched_at: float
    expires_at: float
    refreshed_at: float = -math.inf


@dataclass(frozen=True, slots=True)
class _Failure:
    uri: str
    detail: str
    description: str
    until: float


class RemoteUnavailable(Exception):
    """The document could not be fetched (now, or within the cooldown of a failed fetch)."""

    def __init__(self, detail: str, description: str, last: Fetched[Any] | None) -> None:
        super().__init__(detail)
        #: What went wrong, for the log (already logged once).
        self.detail = detail
        #: What the requester may be told.
        self.description = description
        #: The last document fetched successfully from this URL for this owner, however old.
        self.last = last


class RemoteDocuments(Generic[T]):
    """One kind of remote document (`load` fetches and parses it), cached per owner.

    `label(owner)` names the document in log lines ("jwks_uri of client 'abc'").
    """

    def __init__(
        self,
        fetcher: JwksFetcher,
        load: Loader[T],
        *,
        label: Callable[[str], str],
        limits: FetchLimits,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10000,
    ) -> None:
        self._fetcher = fetcher
        self._load = load
        self._label = label
        self.limits = limits
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, Fetched[T]] = {}
        self._failures: dict[str, _Failure] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[Fetched[T]]] = {}

    async def get(
        self, owner: str, uri: str, *, refresh: bool = False, max_age: float = math.inf
    ) -> Fetched[T]:
        """The document of `owner` at `uri`. `refresh=True` refetches a cached one unless it was
        refetched within the cooldown; `max_age` refetches one fetched longer ago than that even
        before its time-to-live ends. Raises RemoteUnavailable."""
        now = self._clock()
        cached = self._cache.get(owner)
        if cached is not None and cached.uri != uri:
            cached = None
        forced = False
        if cached is not None and now < cached.expires_at and now - cached.fetched_at < max_age:
            if not refresh or now - cached.refreshed_at < self.limits.cooldown:
                return cached
            cached.refreshed_at = now
            forced = True
        failure = self._failures.get(owner)
        if failure is not None and failure.uri == uri and now < failure.until and not forced:
            raise RemoteUnavailable(failure.detail, failure.description, self._last(owner, uri))
        key = (owner, uri)
        task = self._inflight.get(key)
        if task is None:
            # Concurrent requests for one owner share one fetch.
            task = asyncio.create_task(self._fetch_and_remember(owner, uri, forced=forced))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._fetch_done(key, done))
        try:
            # A cancelled request must not cancel the fetch the others wait for.
            return await asyncio.shield(task)
        except RemoteUnavailable as exc:
            # Each waiter gets its own exception: the error path annotates the one it handles.
            raise RemoteUnavailable(exc.detail, exc.description, exc.last) from None

    def _last(self, owner: str, uri: str) -> Fetched[T] | None:
        cached = self._cache.get(owner)
        return cached if cached is not None and cached.uri == uri else None

    def _fetch_done(self, key: tuple[str, str], task: asyncio.Task[Fetched[T]]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not logged as lost

    async def _fetch_and_remember(self, owner: str, uri: str, *, forced: bool) -> Fetched[T]:
        try:
            value, ttl = await self._load(self._fetcher, uri, self.limits)
        except FetchError as exc:
            log.warning("%s refused: %s", self._label(owner), exc.detail)
            if len(self._failures) >= self._max_entries:
                self._failures.clear()
            self._failures[owner] = _Failure(
                uri, exc.detail, exc.description, self._clock() + self.limits.cooldown
            )
            raise RemoteUnavailable(exc.detail, exc.description, self._last(owner, uri)) from None
        now = self._clock()
        self._failures.pop(owner, None)
        if len(self._cache) >= self._max_entries:
            # Registration may be open: bound what many owners can make us hold.
            self._cache.clear()
        fetched = Fetched(uri, value, now, now + ttl, now if forced else -math.inf)
        self._cache[owner] = fetched
        return fetched

    def cancel(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
