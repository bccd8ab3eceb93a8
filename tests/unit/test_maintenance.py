"""Housekeeping runs on the one process holding the lease, and deletes what has expired only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from certbound.app import build_context
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.maintenance import RETIRED_KEY_HISTORY, housekeeping
from certbound.models import SigningKeyRecord

NOW = 2_000_000_000
SETTINGS = Settings(db="sqlite://:memory:", token_lifetime=600, clock_skew=60)


@pytest.fixture
async def context() -> AsyncIterator[ServerContext]:
    context = await build_context(SETTINGS)
    yield context
    await context.store.close()


async def test_one_holder_does_the_work_the_others_skip(context: ServerContext) -> None:
    store = context.store
    await store.record_assertion_jti("c", "expired", NOW - 1)
    await store.record_assertion_jti("c", "live", NOW + 100)
    assert await housekeeping(context, "node-a", now=NOW)
    assert not await housekeeping(context, "node-b", now=NOW + 30)
    assert await store.record_assertion_jti("c", "expired", NOW + 100)  # purged: accepted again
    assert not await store.record_assertion_jti("c", "live", NOW + 100)
    assert await housekeeping(context, "node-a", now=NOW + 60)  # the holder renews
    assert await housekeeping(context, "node-b", now=NOW + 60 + 121)  # node-a is gone: taken over


async def test_retired_keys_are_deleted_a_day_after_they_left_jwks(context: ServerContext) -> None:
    store = context.store
    first = context.keys.active.kid
    published_for = SETTINGS.token_lifetime + SETTINGS.clock_skew
    boundary = NOW - published_for - RETIRED_KEY_HISTORY
    await store.add_signing_key(SigningKeyRecord("second", "ES256", b"c", NOW), retire_others_at=boundary - 1)
    await store.add_signing_key(SigningKeyRecord("third", "ES256", b"c", NOW + 1), retire_others_at=boundary)
    assert await housekeeping(context, "node-a", now=NOW)
    kids = [record.kid for record in await store.list_signing_keys()]
    assert first not in kids  # retired one second before the boundary
    assert kids == ["third", "second"]  # "second" retired at the boundary: kept
