"""Group commit of replay-protection ids (assertion jtis, RFC 7523 §3 item 7; DPoP proof jtis,
RFC 9449 §11.1), shared by both stores.

Requests that arrive while an insert is in flight wait and are then inserted together by one
statement, so a burst costs one commit, not one each. The store supplies the statement (`insert`:
(key, expires_at) rows in, the keys it inserted out) and the lock that keeps one batch in flight at
a time. A key is whatever identifies one use: (client_id, jti) for assertions, the jti for proofs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["JtiGroupCommit"]

K = TypeVar("K", bound=Hashable)


class JtiGroupCommit(Generic[K]):
    def __init__(
        self,
        insert: Callable[[Sequence[tuple[K, int]]], Awaitable[set[K]]],
        *,
        lock: asyncio.Lock,
        max_batch: int,
    ) -> None:
        self._insert = insert
        self._lock = lock
        self._max_batch = max_batch
        self._pending: list[tuple[tuple[K, int], asyncio.Future[bool]]] = []
        self._writers: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak refs

    async def record(self, key: K, expires_at: int) -> bool:
        """True when `key` was new; every copy of a key but the first is a replay."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(((key, expires_at), future))
        if len(self._pending) == 1:
            self._start_writer()
        return await future

    def _start_writer(self) -> None:
        task = asyncio.get_running_loop().create_task(self._write_pending())
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def _write_pending(self) -> None:
        async with self._lock:
            # Sliced once the lock is ours: everything that arrived while we waited joins the batch.
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            if self._pending:
                self._start_writer()
            try:
                inserted = await self._insert([row for row, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
        for (key, _), future in batch:
            fresh = key in inserted
            # The same key twice in one batch: the first one won, every other copy is a replay.
            inserted.discard(key)
            if not future.done():
                future.set_result(fresh)
