"""PostgreSQL for tests: a fresh database per run (or per test), dropped afterwards.

The server is the one at $CERTBOUND_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test,
trust auth: running on every machine here, CI's included). Tests that need it skip, saying why,
only when nothing answers there; any other failure (it answers but refuses) is an error.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

__all__ = ["ADMIN_URL", "fresh_database", "require_postgres", "run_sync", "truncate_all", "via_port"]

ADMIN_URL = os.environ.get("CERTBOUND_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

_T = TypeVar("_T")


def run_sync(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run `coroutine` to completion on a loop of its own in another thread: callable from sync
    fixtures and from inside a running loop alike, without touching the caller's event loop."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))


def via_port(url: str, port: int) -> str:
    """`url` with its host and port replaced by 127.0.0.1:`port` (a proxy in front of it)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(
        parts._replace(netloc=f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}")
    )


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def require_postgres() -> None:
    """Skip the calling test when no PostgreSQL answers at ADMIN_URL."""

    async def probe() -> None:
        connection = await asyncpg.connect(ADMIN_URL, timeout=5)
        await connection.close()

    try:
        run_sync(probe())
    except (OSError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL is unreachable at {ADMIN_URL} ({exc}); set CERTBOUND_TEST_POSTGRES")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database (its URL), dropped on exit even if connections are left open."""
    require_postgres()
    name = f"certbound_test_{os.getpid()}_{secrets.token_hex(4)}"
    run_sync(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _database_url(name)
    finally:
        run_sync(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def truncate_all(url: str) -> None:
    """Empty every table but the schema version, restarting sequences: a migrated, empty store."""
    connection = await asyncpg.connect(url, timeout=10)
    try:
        tables = await connection.fetch(
            "SELECT quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'certbound_schema'"
        )
        if tables:
            await connection.execute(f"TRUNCATE {', '.join(row[0] for row in tables)} RESTART IDENTITY")
    finally:
        await connection.close()
