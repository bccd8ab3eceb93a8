"""Checking a presented client secret against its stored hash (SPEC §6: stored hashed, compared in
constant time) without letting the slow hash become a lever (issue 9 finding 15).

A generated secret's HMAC is checked on the event loop in microseconds. A chosen secret's scrypt
(certbound.vault) costs ~0.1 s of CPU, so anyone who knows such a client's id could make the server
burn it per guess. Hence:
- scrypt runs in a thread (it releases the GIL), at most `slow_at_once` at a time per process, and
  at most `slow_waiting` wait for their turn; beyond that the answer is 503 temporarily_unavailable
  at once, so a flood costs a bounded share of one core and the event loop keeps serving;
- requests presenting the same secret for the same client while its check runs share that check:
  a client's burst of parallel requests after a restart costs one scrypt and gets no 503;
- once a secret has verified, its HMAC is remembered (in memory only, keyed by the stored hash, so a
  rotation forgets it): the client's next requests take the fast path, and while it is remembered a
  wrong guess is refused by the fast path too.
"""

from __future__ import annotations

import asyncio
import hmac

from certbound.errors import TemporarilyUnavailableError
from certbound.vault import Vault, is_slow_hash

__all__ = ["SecretChecker"]


class SecretChecker:
    def __init__(
        self, vault: Vault, *, slow_at_once: int = 1, slow_waiting: int = 16, remembered: int = 4096
    ) -> None:
        self._vault = vault
        self._slots = asyncio.Semaphore(slow_at_once)
        self._slow_waiting = slow_waiting
        self._waiting = 0
        self._remembered = remembered
        #: stored slow hash -> HMAC of the secret that verified against it
        self._verified: dict[bytes, bytes] = {}
        #: (stored slow hash, HMAC of the presented secret) -> the check running for it
        self._in_flight: dict[tuple[bytes, bytes], asyncio.Future[bool]] = {}

    async def hash_chosen(self, secret: str) -> bytes:
        """The slow hash of an administrator's secret, computed off the event loop."""
        return await asyncio.to_thread(self._vault.hash_chosen_secret, secret)

    async def verify(self, secret: str, stored: bytes) -> bool:
        if not is_slow_hash(stored):
            return self._vault.verify_secret(secret, stored)
        presented = self._vault.hash_secret(secret)
        known = self._verified.get(stored)
        if known is not None:
            return hmac.compare_digest(presented, known)
        key = (stored, presented)
        check = self._in_flight.get(key)
        if check is None:
            if self._waiting >= self._slow_waiting:
                raise TemporarilyUnavailableError("too many client secret checks in progress: retry shortly")
            # A task of its own: a requester that goes away does not cancel the others' answer.
            check = asyncio.ensure_future(self._slow_check(secret, stored, presented))
            self._waiting += 1
            self._in_flight[key] = check
            check.add_done_callback(lambda _: self._finished(key))
        return await asyncio.shield(check)

    def _finished(self, key: tuple[bytes, bytes]) -> None:
        self._waiting -= 1
        del self._in_flight[key]

    async def _slow_check(self, secret: str, stored: bytes, presented: bytes) -> bool:
        async with self._slots:
            known = self._verified.get(stored)  # verified while this one waited
            if known is not None:
                return hmac.compare_digest(presented, known)
            matches = await asyncio.to_thread(self._vault.verify_chosen_secret, secret, stored)
        if matches:
            if len(self._verified) >= self._remembered:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[stored] = presented
        return matches
