"""A bounded mapping that forgets its least recently used entries: the memory of a cache that a
peer can fill (certificates it presents, chains it sends) must not grow with what it sends."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `max_entries` entries and, when entries are given weights (bytes, say), at most
    `max_weight` in all; the least recently used go first."""

    def __init__(self, max_entries: int, max_weight: int | None = None) -> None:
        self._max_entries = max_entries
        self._max_weight = max_weight
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __getitem__(self, key: K) -> V:
        """The entry (KeyError if absent), now the most recently used."""
        value, _ = self._entries[key]
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, weight: int = 1) -> bool:
        """Remember `value` under `key`, unless it alone weighs more than `max_weight` (False)."""
        if self._max_weight is not None and weight > self._max_weight:
            return False
        entries = self._entries
        previous = entries.pop(key, None)
        if previous is not None:
            self._weight -= previous[1]
        entries[key] = (value, weight)
        self._weight += weight
        while len(entries) > self._max_entries or (
            self._max_weight is not None and self._weight > self._max_weight
        ):
            _, (_, dropped) = entries.popitem(last=False)
            self._weight -= dropped
        return True

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        return self._weight
