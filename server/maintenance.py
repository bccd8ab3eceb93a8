"""Background work of one server process (SPEC §3, §6): follow the client change log, re-read the
signing keys, and do the database's housekeeping on one process at a time.

- The client change log is read every POLL_SECONDS (certbound.clients): changes reach this
  process within 1 s, and its success tells /readyz that the database answers.
- Signing keys are re-read every REFRESH_SECONDS: a rotation made on any node or by
  `certbound keys rotate` is published within 30 s.
- Legacy-audience counts (certbound.legacyaudience) are added to the store every FLUSH_SECONDS.
- Housekeeping (expired jtis, reference tokens, revocations and change log rows; retired keys no
  longer published) runs every HOUSEKEEPING_SECONDS on whichever process holds the `housekeeping`
  lease in the database, so several workers and nodes do not repeat it.

A job that fails (the database is down) is logged once when it starts failing and once when it
works again, and keeps being retried at its own pace: everything recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from certbound.clients import POLL_SECONDS
from certbound.context import ServerContext
from certbound.errors import StoreError
from certbound.keys import REFRESH_SECONDS
from certbound.legacyaudience import FLUSH_SECONDS

__all__ = ["HOUSEKEEPING_SECONDS", "RETIRED_KEY_HISTORY", "housekeeping", "maintain"]

log = logging.getLogger("certbound.maintenance")

HOUSEKEEPING_SECONDS = 60.0
#: A lease outlives one missed round, so the holder keeps it while it lives; another process
#: takes over within two rounds of its death.
_LEASE_SECONDS = int(2 * HOUSEKEEPING_SECONDS)
#: Retired keys are deleted this long after they left /jwks (a day of history for `keys list`).
RETIRED_KEY_HISTORY = 86400


async def maintain(context: ServerContext) -> None:
    """Run every job until cancelled."""
    holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"

    async def housekeeping_round() -> None:
        await housekeeping(context, holder, now=int(time.time()))

    async def save_legacy_audience_counts() -> None:
        await context.legacy_audience.flush(context.store)

    await asyncio.gather(
        _every(POLL_SECONDS, context.clients.sync, "reading the client change log"),
        _every(REFRESH_SECONDS, context.keys.refresh, "re-reading the signing keys"),
        _every(HOUSEKEEPING_SECONDS, housekeeping_round, "housekeeping"),
        _every(FLUSH_SECONDS, save_legacy_audience_counts, "saving legacy-audience counts"),
    )


async def housekeeping(context: ServerContext, holder: str, *, now: int) -> bool:
    """One round, if this process holds the lease; returns whether it did the work."""
    store = context.store
    if not await store.acquire_lease("housekeeping", holder, now=now, seconds=_LEASE_SECONDS):
        return False
    purged = await store.purge_expired(now)
    published_for = context.settings.token_lifetime + context.settings.clock_skew
    keys = await store.delete_signing_keys_retired_before(now - published_for - RETIRED_KEY_HISTORY)
    if purged or keys:
        log.info("housekeeping: %d expired rows and %d retired signing keys deleted", purged, keys)
    return True


async def _every(interval: float, job: Callable[[], Awaitable[None]], what: str) -> None:
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await job()
        except Exception as exc:
            if not failing:
                # A database error is expected while it is down; anything else is a bug: trace it.
                unexpected = not isinstance(exc, StoreError)
                log.warning("%s failed (retrying every %ss): %s", what, interval, exc, exc_info=unexpected)
                failing = True
            continue
        if failing:
            log.info("%s works again", what)
            failing = False
