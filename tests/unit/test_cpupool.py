"""CpuPool: CPU-heavy work off the event loop, capped, refusing at once when full (issue 9)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from certbound.cpupool import CpuPool
from certbound.errors import TemporarilyUnavailableError


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Released at teardown, so a blocked job never outlives its test."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def make_pool() -> Iterator[Callable[..., CpuPool]]:
    pools: list[CpuPool] = []

    def make(*, threads: int = 1, queue: int = 0) -> CpuPool:
        pools.append(CpuPool(threads=threads, queue=queue))
        return pools[-1]

    yield make
    for pool in pools:
        pool.close()


async def test_work_runs_on_a_pool_thread_and_returns_its_result(make_pool: Callable[..., CpuPool]) -> None:
    pool = make_pool()
    name = await pool.run(lambda: threading.current_thread().name)
    assert name.startswith("certbound-cpu")
    assert await pool.run(pow, 3, 4) == 81
    with pytest.raises(ZeroDivisionError):
        await pool.run(divmod, 1, 0)
    assert pool.pending == 0


async def test_the_loop_keeps_running_while_a_job_blocks(
    make_pool: Callable[..., CpuPool], gate: threading.Event
) -> None:
    job = asyncio.ensure_future(make_pool().run(gate.wait))
    for _ in range(5):
        await asyncio.sleep(0)  # the loop turns while the pool thread is blocked
    assert not job.done()
    gate.set()
    assert await job is True


async def test_beyond_threads_plus_queue_a_job_is_refused_at_once(
    make_pool: Callable[..., CpuPool], gate: threading.Event
) -> None:
    pool = make_pool(threads=1, queue=2)
    jobs = [asyncio.ensure_future(pool.run(gate.wait)) for _ in range(3)]
    await asyncio.sleep(0)
    assert pool.pending == 3
    with pytest.raises(TemporarilyUnavailableError, match="busy"):
        await pool.run(gate.wait)
    gate.set()
    assert await asyncio.gather(*jobs) == [True, True, True]
    await asyncio.sleep(0)  # the releases are scheduled on the loop
    assert pool.pending == 0
    assert await pool.run(int, "7") == 7  # room again


async def test_a_cancelled_request_still_counts_until_its_job_ends(
    make_pool: Callable[..., CpuPool], gate: threading.Event
) -> None:
    pool = make_pool()
    job = asyncio.ensure_future(pool.run(gate.wait))
    await asyncio.sleep(0)
    job.cancel()
    await asyncio.sleep(0)
    assert pool.pending == 1  # the thread is still busy with it
    with pytest.raises(TemporarilyUnavailableError):
        await pool.run(int, "1")
    gate.set()
    for _ in range(100):
        if pool.pending == 0:
            break
        await asyncio.sleep(0.01)
    assert pool.pending == 0
