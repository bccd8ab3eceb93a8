"""certbound.dpop.replay: a resource's memory of accepted proof jtis (RFC 9449 §11.1)."""

from __future__ import annotations

from certbound.dpop import ProofReplayCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_jti_is_accepted_once_while_it_is_remembered() -> None:
    clock = Clock()
    cache = ProofReplayCache(clock=clock)
    assert await cache.first_use("a", 1060)
    assert not await cache.first_use("a", 1060)
    assert await cache.first_use("b", 1060)
    clock.now = 1061
    # Past its time the proof fails the iat check anyway: the jti is forgotten.
    assert await cache.first_use("c", 1121)
    assert len(cache) == 1
    assert await cache.first_use("a", 1121)
    assert not await cache.first_use("a", 1121)


async def test_memory_is_bounded() -> None:
    cache = ProofReplayCache(max_entries=3, clock=Clock())
    for jti in "abcde":
        assert await cache.first_use(jti, 2000)
    assert len(cache) == 3
    assert not await cache.first_use("e", 2000)
