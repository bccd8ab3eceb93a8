"""Counting assertions accepted only because of --assertion-audience legacy: in memory, flushed to
the store in one write, kept for the next flush when the store fails."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from certbound.errors import StoreUnavailableError
from certbound.legacyaudience import LegacyAudienceUses


class RecordingStore:
    def __init__(self) -> None:
        self.batches: list[dict[str, tuple[int, int]]] = []
        self.down = False

    async def add_legacy_audience_uses(self, uses: Mapping[str, tuple[int, int]]) -> None:
        if self.down:
            raise StoreUnavailableError("database down")
        self.batches.append(dict(uses))


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_counts_are_flushed_in_one_write_and_reset() -> None:
    clock, store = Clock(), RecordingStore()
    uses = LegacyAudienceUses(clock=clock)
    uses.record("a")
    clock.now = 1005.5
    uses.record("a")
    uses.record("b")
    await uses.flush(store)  # type: ignore[arg-type]
    await uses.flush(store)  # type: ignore[arg-type]  (nothing new: no write)
    assert store.batches == [{"a": (2, 1005), "b": (1, 1005)}]


async def test_a_failed_flush_keeps_the_counts_for_the_next() -> None:
    clock, store = Clock(), RecordingStore()
    uses = LegacyAudienceUses(clock=clock)
    uses.record("a")
    store.down = True
    with pytest.raises(StoreUnavailableError):
        await uses.flush(store)  # type: ignore[arg-type]
    clock.now = 2000
    uses.record("a")
    store.down = False
    await uses.flush(store)  # type: ignore[arg-type]
    assert store.batches == [{"a": (2, 2000)}]
