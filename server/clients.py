"""Client lookup with a small in-process cache, so the token endpoint does not read the database
for every request. Local changes invalidate at once; changes made by other nodes are seen within
`ttl` seconds (a deleted client can get tokens from another node for at most that long).
"""

from __future__ import annotations

import time

from certbound.models import Client
from certbound.store import Store

__all__ = ["ClientCache"]


class ClientCache:
    def __init__(
        self, store: Store, *, ttl: float = 10.0, negative_ttl: float = 2.0, max_entries: int = 10000
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Client | None]] = {}

    async def get(self, client_id: str) -> Client | None:
        now = time.monotonic()
        entry = self._entries.get(client_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        client = await self._store.get_client(client_id)
        if len(self._entries) >= self._max_entries:
            # Unknown client_ids are attacker-chosen: bound the memory they can take.
            self._entries.clear()
        self._entries[client_id] = (now + (self._ttl if client else self._negative_ttl), client)
        return client

    def invalidate(self, client_id: str) -> None:
        self._entries.pop(client_id, None)
