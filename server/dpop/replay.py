"""A resource server's memory of the DPoP proofs it accepted (RFC 9449 §11.1): a proof's jti is
accepted once while its iat is acceptable.

`ProofReplayCache` is per process and bounded: it forgets a jti when the proof could no longer pass
the iat check anyway, and beyond `max_entries` it forgets the oldest first (only token holders reach
it: a jti is recorded after the token and the proof verified). Resources run as several processes
share nothing through it; give `TokenVerifier` another `ProofReplayCheck` (e.g. over Redis) to share.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

__all__ = ["ProofReplayCache", "ProofReplayCheck"]


class ProofReplayCheck(Protocol):
    async def first_use(self, jti: str, remember_until: int) -> bool:
        """True the first time `jti` is seen (remember it until `remember_until`), False after."""


class ProofReplayCache:
    def __init__(self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._seen)

    async def first_use(self, jti: str, remember_until: int) -> bool:
        now = self._clock()
        # Entries arrive roughly in expiry order: drop the expired ones from the old end.
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        remembered = self._seen.get(jti)
        if remembered is not None and remembered >= now:
            return False
        self._seen[jti] = remember_until
        self._seen.move_to_end(jti)
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return True
