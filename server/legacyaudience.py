"""Which clients still rely on `--assertion-audience legacy` (RFC 10070, SPEC §7).

Under legacy mode an assertion whose `aud` is the token endpoint URL (not the issuer identifier) is
accepted; each such acceptance is counted for its client, with when it was last seen, so an
operator can see which clients must change before switching to `strict` (admin API, `certbound
clients show` and `certbound clients legacy-audience`).

Counting costs no database write per request: each process counts in memory and adds its counts to
the store every FLUSH_SECONDS (certbound.maintenance) and when it stops, one statement per flush.
What the admin API shows may therefore lag by up to FLUSH_SECONDS (per worker and node), and a
process killed with SIGKILL loses at most its last interval's counts. A failed flush keeps its
counts for the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from certbound.store import Store

__all__ = ["FLUSH_SECONDS", "LegacyAudienceUses"]

#: How often counts reach the store: the most the shown count can lag behind.
FLUSH_SECONDS = 10.0


class LegacyAudienceUses:
    """This process's counts since its last flush: client_id -> (count, last seen, epoch seconds)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._pending: dict[str, tuple[int, int]] = {}

    def record(self, client_id: str) -> None:
        count, _ = self._pending.get(client_id, (0, 0))
        self._pending[client_id] = (count + 1, int(self._clock()))

    async def flush(self, store: Store) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            await store.add_legacy_audience_uses(batch)
        except BaseException:
            # Kept for the next flush, merged with what was counted meanwhile.
            for client_id, (count, seen) in batch.items():
                later_count, later_seen = self._pending.get(client_id, (0, 0))
                self._pending[client_id] = (count + later_count, max(seen, later_seen))
            raise
