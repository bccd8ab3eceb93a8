"""certbound.lru: entries beyond the count or the weight go, least recently used first; an entry
heavier than the whole budget is not stored; replacing an entry replaces its weight."""

from __future__ import annotations

import pytest

from certbound.lru import LRU


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache["a"] == 1  # a is now the most recently used
    cache.put("c", 3)
    assert "a" in cache
    assert "b" not in cache
    assert len(cache) == 2
    with pytest.raises(KeyError):
        cache["b"]


def test_weights_bound_the_total_and_the_lightest_survivors_stay() -> None:
    cache: LRU[str, str] = LRU(100, max_weight=10)
    assert cache.put("a", "A", weight=4)
    assert cache.put("b", "B", weight=4)
    assert cache.put("c", "C", weight=4)  # 12 > 10: a goes
    assert "a" not in cache
    assert cache.weight == 8
    assert not cache.put("huge", "H", weight=11)
    assert "huge" not in cache
    assert cache.weight == 8


def test_replacing_an_entry_replaces_its_weight() -> None:
    cache: LRU[str, str] = LRU(100, max_weight=10)
    cache.put("a", "old", weight=6)
    cache.put("a", "new", weight=2)
    assert cache["a"] == "new"
    assert cache.weight == 2
    assert len(cache) == 1


def test_a_none_value_is_an_entry() -> None:
    cache: LRU[str, None] = LRU(1)
    cache.put("a", None)
    assert "a" in cache
    assert cache["a"] is None
