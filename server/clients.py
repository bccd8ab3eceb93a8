"""Client lookup with an in-process cache kept coherent by the store's client change log (SPEC §3:
a change to a client takes effect on every worker and every node within 1 s).

Every write to a client appends its client_id to the change log in the same transaction. Each
process reads the log every POLL_SECONDS with one indexed query (`seq > cursor`) and drops the
entries it names, so the token endpoint reads the database only on a miss. The same mechanism
serves SQLite with `--workers` and PostgreSQL nodes; it needs no connection of its own and
survives reconnects (a missed notification cannot be lost: the cursor remembers).

A cached answer is used only while the last successful poll *started* less than MAX_STALENESS
ago: every change committed before that poll started has been applied, so a cached client is never
more than MAX_STALENESS old. When the database stops answering, the cache stops being trusted
after MAX_STALENESS and lookups go to the database (and fail with StoreUnavailableError): a node
cut off from its database cannot know whether another node deleted the client meanwhile. When
polls succeed again after a gap, the cache is emptied and the cursor jumps to the newest change.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from certbound.models import Client
from certbound.store import Store

__all__ = ["MAX_STALENESS", "POLL_SECONDS", "ClientCache"]

#: How often each process reads the change log.
POLL_SECONDS = 0.25
#: How old the newest applied change log read may be for the cache to answer (below SPEC's 1 s,
#: leaving room for the request that uses the answer).
MAX_STALENESS = 0.75
#: Changes applied per query at most (a burst of changes takes several queries, all in one poll).
_CHANGES_PER_QUERY = 1000


class ClientCache:
    def __init__(
        self,
        store: Store,
        *,
        max_entries: int = 10000,
        max_staleness: float = MAX_STALENESS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_entries = max_entries
        self._max_staleness = max_staleness
        self._clock = clock
        self._entries: dict[str, Client | None] = {}
        #: Bumped by every invalidation: a read that raced with one must not be cached.
        self._generation = 0
        #: The newest change applied, None before the first successful poll.
        self._cursor: int | None = None
        #: When the last successful poll started (clock time); -inf: never.
        self._synced_at = float("-inf")

    @property
    def is_current(self) -> bool:
        """Whether cached answers may be used: the change log was read less than
        `max_staleness` ago."""
        return self._clock() - self._synced_at < self._max_staleness

    def synced_within(self, seconds: float) -> bool:
        """Whether the change log (so the database) answered within the last `seconds`."""
        return self._clock() - self._synced_at < seconds

    async def get(self, client_id: str) -> Client | None:
        if self.is_current and client_id in self._entries:
            return self._entries[client_id]
        generation = self._generation
        client = await self._store.get_client(client_id)
        if generation == self._generation and self.is_current:
            if len(self._entries) >= self._max_entries:
                # Unknown client_ids are attacker-chosen: bound the memory they can take.
                self._entries.clear()
            self._entries[client_id] = client
        return client

    def invalidate(self, client_id: str) -> None:
        """Forget one client (a change made by this process: seen at once, before the log says so)."""
        self._entries.pop(client_id, None)
        self._generation += 1

    async def sync(self) -> None:
        """Read the change log once and apply it; raises the store's error when the database does
        not answer (the cache then stops being trusted once `max_staleness` has passed)."""
        started = self._clock()
        if self._cursor is None or not self.is_current:
            # First poll, or polls failed or were late: changes may be missing (or purged).
            latest = await self._store.latest_client_change()
            self._entries.clear()
            self._generation += 1
            self._cursor = latest
        else:
            while changes := await self._store.client_changes_since(self._cursor, limit=_CHANGES_PER_QUERY):
                for seq, client_id in changes:
                    self.invalidate(client_id)
                    self._cursor = seq
                if len(changes) < _CHANGES_PER_QUERY:
                    break
        self._synced_at = started
