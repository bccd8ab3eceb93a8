"""ClientCache: changes made by other processes are applied from the change log (SPEC §3: within
1 s), and the cache never answers from a view older than its staleness bound."""

from __future__ import annotations

import asyncio

import pytest

from certbound.clients import MAX_STALENESS, ClientCache
from certbound.errors import StoreError
from certbound.models import Client
from certbound.store.sqlite import SQLiteStore


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(client_id: str, name: str = "first") -> Client:
    return Client(client_id, {"token_endpoint_auth_method": "none", "client_name": name}, 1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(store: SQLiteStore, clock: Clock) -> ClientCache:
    """This process's cache; writes made directly on `store` play another process's."""
    cache = ClientCache(store, clock=clock)
    await cache.sync()
    return cache


async def test_a_change_made_elsewhere_is_applied_at_the_next_sync(
    store: SQLiteStore, cache: ClientCache
) -> None:
    await store.create_client(client("a"))
    assert (await cache.get("a")) == client("a")
    await store.update_client(client("a", "second"))
    assert (await cache.get("a")) == client("a")  # cached: no query per request
    await cache.sync()
    assert (await cache.get("a")) == client("a", "second")
    await store.delete_client("a")
    await cache.sync()
    assert await cache.get("a") is None


async def test_an_unknown_client_created_elsewhere_is_found_after_the_next_sync(
    store: SQLiteStore, cache: ClientCache
) -> None:
    assert await cache.get("new") is None
    await store.create_client(client("new"))
    assert await cache.get("new") is None  # the miss is cached too
    await cache.sync()
    assert await cache.get("new") == client("new")


async def test_a_change_in_this_process_is_seen_at_once(store: SQLiteStore, cache: ClientCache) -> None:
    await store.create_client(client("a"))
    await cache.get("a")
    await store.delete_client("a")
    cache.invalidate("a")
    assert await cache.get("a") is None


async def test_without_a_recent_sync_every_lookup_reads_the_database(
    store: SQLiteStore, cache: ClientCache, clock: Clock
) -> None:
    await store.create_client(client("a"))
    await cache.get("a")
    await store.delete_client("a")  # elsewhere; no sync follows
    clock.now += MAX_STALENESS
    assert not cache.is_current
    assert await cache.get("a") is None


async def test_a_cache_whose_database_stopped_answering_stops_answering_too(
    store: SQLiteStore, cache: ClientCache, clock: Clock
) -> None:
    await store.create_client(client("a"))
    await cache.get("a")
    await store.close()  # the database is gone: every query fails
    with pytest.raises(StoreError):
        await cache.sync()
    assert await cache.get("a") == client("a")  # still within the staleness bound
    clock.now += MAX_STALENESS
    with pytest.raises(StoreError):
        await cache.get("a")
    assert not cache.synced_within(MAX_STALENESS)


async def test_after_a_gap_the_cache_starts_over_from_the_newest_change(
    store: SQLiteStore, cache: ClientCache, clock: Clock
) -> None:
    await store.create_client(client("a"))
    await cache.get("a")
    await store.update_client(client("a", "second"))
    await store.purge_expired(10**12)  # the change row is gone before this process read it
    clock.now += 60
    await cache.sync()
    assert cache.is_current
    assert (await cache.get("a")) == client("a", "second")


async def test_a_read_that_raced_with_an_invalidation_is_not_cached(
    store: SQLiteStore, cache: ClientCache
) -> None:
    await store.create_client(client("a"))
    in_flight = asyncio.ensure_future(cache.get("a"))
    await asyncio.sleep(0)  # its query is on its way and reads the first version
    cache.invalidate("a")  # a sync applied a change meanwhile
    assert (await in_flight) == client("a")
    await store.update_client(client("a", "second"))
    assert (await cache.get("a")) == client("a", "second")


async def test_a_burst_of_changes_is_applied_in_one_sync(store: SQLiteStore, cache: ClientCache) -> None:
    for n in range(1200):
        await store.create_client(client(f"c{n}"))
    assert await cache.get("c1199") is not None
    await store.delete_client("c1199")
    await cache.sync()
    assert await cache.get("c1199") is None


async def test_unknown_client_ids_cannot_grow_the_cache_without_bound(
    store: SQLiteStore, clock: Clock
) -> None:
    cache = ClientCache(store, clock=clock, max_entries=10)
    await cache.sync()
    for n in range(25):
        assert await cache.get(f"unknown-{n}") is None
    assert len(cache._entries) <= 10
