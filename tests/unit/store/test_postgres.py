"""What is particular to the PostgreSQL store: migrations under an advisory lock, a bounded pool,
and a database that is down or unreachable (never a hang: StoreUnavailableError within the
timeout, then recovery by itself). The Store contract is in test_contract.py."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from certbound.errors import StoreError, StoreUnavailableError
from certbound.models import Client
from certbound.store.postgres import MIGRATIONS, PostgresStore
from tests.postgres import fresh_database, via_port
from tests.tcpproxy import TcpProxy

#: Timeout of the stores under test: the outage tests wait about this long.
TIMEOUT = 1.0


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def proxied(database: str) -> Iterator[tuple[str, TcpProxy]]:
    """The database's URL through a TCP proxy the test can cut."""
    parts = urlsplit(database)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield via_port(database, proxy.port), proxy


async def test_nodes_starting_together_on_an_empty_database_migrate_once(database: str) -> None:
    stores = [PostgresStore(database, timeout=30) for _ in range(5)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        connection = await asyncpg.connect(database)
        try:
            versions = [row[0] for row in await connection.fetch("SELECT version FROM certbound_schema")]
        finally:
            await connection.close()
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for store in stores:
            await store.close()


async def test_a_schema_newer_than_this_certbound_is_refused(database: str) -> None:
    connection = await asyncpg.connect(database)
    try:
        await connection.execute("CREATE TABLE certbound_schema (version INTEGER NOT NULL)")
        await connection.execute("INSERT INTO certbound_schema VALUES ($1)", len(MIGRATIONS) + 1)
    finally:
        await connection.close()
    with pytest.raises(StoreError, match="newer than this certbound"):
        await PostgresStore(database, timeout=TIMEOUT).open()


async def test_the_pool_never_opens_more_than_pool_size_connections(database: str) -> None:
    store = PostgresStore(database, pool_size=2, timeout=10)
    await store.open()
    try:
        await store.create_client(Client("c", {"token_endpoint_auth_method": "none"}, 1))
        clients = await asyncio.gather(*(store.get_client("c") for _ in range(50)))
        assert all(client is not None for client in clients)
        connection = await asyncpg.connect(database)
        try:
            count = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'certbound'"
            )
        finally:
            await connection.close()
        assert 1 <= count <= 2
    finally:
        await store.close()


async def test_nothing_listening_fails_open_at_once_with_the_address() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}/nodb"):
        await PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/nodb", timeout=TIMEOUT).open()
    assert time.monotonic() - started < TIMEOUT + 2


async def test_a_black_holed_database_fails_open_within_the_timeout(
    proxied: tuple[str, TcpProxy],
) -> None:
    url, proxy = proxied
    proxy.cut()
    started = time.monotonic()
    with pytest.raises(StoreError):
        await PostgresStore(url, timeout=TIMEOUT).open()
    assert time.monotonic() - started < TIMEOUT + 2


async def test_an_outage_is_unavailable_within_the_timeout_then_recovers(
    proxied: tuple[str, TcpProxy],
) -> None:
    url, proxy = proxied
    store = PostgresStore(url, pool_size=3, timeout=TIMEOUT)
    await store.open()
    try:
        await store.create_client(Client("c", {"token_endpoint_auth_method": "none"}, 1))
        proxy.cut()
        # Reads, writes, the jti group commit and transactions: all fail the same bounded way,
        # also when more operations wait than the pool has connections.
        operations = [
            store.get_client("c"),
            store.record_assertion_jti("c", "j1", 10**10),
            store.delete_client("c"),
            store.latest_client_change(),
            *(store.is_jwt_revoked(f"j{n}") for n in range(6)),
        ]
        started = time.monotonic()
        results = await asyncio.gather(*operations, return_exceptions=True)
        elapsed = time.monotonic() - started
        assert all(isinstance(result, StoreUnavailableError) for result in results), results
        assert elapsed < 2 * TIMEOUT + 1  # queued behind the pool at most once

        proxy.restore()
        deadline = time.monotonic() + 10
        while True:  # recovery by itself: dead connections are replaced on the next acquire
            try:
                client = await store.get_client("c")
                break
            except StoreUnavailableError:
                assert time.monotonic() < deadline, "the store did not recover"
                await asyncio.sleep(0.1)
        assert client is not None
        assert await store.record_assertion_jti("c", "j2", 10**10)
    finally:
        proxy.restore()
        await store.close()
