"""Storage: the Store protocol and its implementations, chosen by the database URL."""

from __future__ import annotations

from certbound.errors import ConfigError
from certbound.store.base import ClientExistsError, Store

__all__ = ["ClientExistsError", "Store", "open_store"]


async def open_store(db_url: str) -> Store:
    """Open the store a `--db` URL names and migrate its schema."""
    if db_url.startswith("sqlite://"):
        from certbound.store.sqlite import SQLiteStore

        store: Store = SQLiteStore.from_url(db_url)
    else:
        raise ConfigError("PostgreSQL support is not built yet: use --db sqlite:///PATH")
    await store.open()
    return store
