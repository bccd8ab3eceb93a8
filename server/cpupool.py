"""CPU-heavy work on peer-chosen input, off the event loop and capped (issue 9: every cost an
unauthenticated peer can cause is bounded).

Certificate path building (certbound.pki.trust) and signature verification with a client's keys
cost milliseconds each even within the key policy; on the event loop they would stall every other
request meanwhile. cryptography releases the GIL while it verifies signatures and builds paths, so
a few threads run that work while the loop keeps serving. `CpuPool` caps it: at most `threads` jobs
run and `queue` more wait; beyond that a request is refused at once (503 temporarily_unavailable)
rather than queued without bound. A job whose request went away still counts until it finishes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import TypeVar

from certbound.errors import TemporarilyUnavailableError

__all__ = ["CpuPool"]

T = TypeVar("T")


class CpuPool:
    """A bounded thread pool for one server process; `close()` when the process stops."""

    def __init__(self, *, threads: int = 2, queue: int = 64) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="certbound-cpu"
        )
        self._capacity = threads + queue
        self._pending = 0

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` on a pool thread; TemporarilyUnavailableError when the pool is full."""
        if self._pending >= self._capacity:
            raise TemporarilyUnavailableError("the server is busy; retry shortly")
        loop = asyncio.get_running_loop()
        future = self._executor.submit(function, *args)
        self._pending += 1
        future.add_done_callback(lambda _: self._finished(loop))
        return await asyncio.wrap_future(future, loop=loop)

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs on the pool thread (or the loop's, for a job cancelled before it started).
        with contextlib.suppress(RuntimeError):  # the loop closed first: nothing left to count
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
