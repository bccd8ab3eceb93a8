"""Storage: the Store protocol and its implementations, chosen by the database URL."""

from __future__ import annotations

from certbound.errors import ConfigError
from certbound.store.base import ClientExistsError, Store

__all__ = ["POSTGRES_SCHEMES", "ClientExistsError", "Store", "open_store"]

#: URL schemes of the PostgreSQL store (libpq accepts both).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


async def open_store(db_url: str, *, pool_size: int = 10, seconds: float = 5.0) -> Store:
    """Open the store a `--db` URL names and migrate its schema. `pool_size` and `seconds` (per
    operation) apply to PostgreSQL; SQLite has one connection and its own busy timeout."""
    store: Store
    if db_url.startswith("sqlite://"):
        from certbound.store.sqlite import SQLiteStore

        store = SQLiteStore.from_url(db_url)
    elif db_url.startswith(POSTGRES_SCHEMES):
        from certbound.store.postgres import PostgresStore

        store = PostgresStore(db_url, pool_size=pool_size, timeout=seconds)
    else:
        raise ConfigError(f"unsupported database URL {db_url!r}: use sqlite:///PATH or postgresql://...")
    await store.open()
    return store
