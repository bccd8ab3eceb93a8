"""Fixtures shared by unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from certbound.store.sqlite import SQLiteStore


@pytest.fixture
async def store() -> AsyncIterator[SQLiteStore]:
    """A fresh, migrated in-memory SQLite store."""
    sqlite = SQLiteStore(":memory:")
    await sqlite.open()
    yield sqlite
    await sqlite.close()
