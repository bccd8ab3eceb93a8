"""Group commit of assertion jtis (RFC 7523 §3 item 7), shared by both stores.

Requests that arrive while a jti insert is in flight wait and are then inserted together by one
statement, so a burst of assertions costs one commit, not one each. The store supplies the
statement (`insert`: rows in, the (client_id, jti) pairs it inserted out) and the lock that keeps
one batch in flight at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["JtiGroupCommit", "JtiRow"]

#: (client_id, jti, expires_at)
JtiRow = tuple[str, str, int]


class JtiGroupCommit:
    def __init__(
        self,
        insert: Callable[[Sequence[JtiRow]], Awaitable[set[tuple[str, str]]]],
        *,
        lock: asyncio.Lock,
        max_batch: int,
    ) -> None:
        self._insert = insert
        self._lock = lock
        self._max_batch = max_batch
        self._pending: list[tuple[JtiRow, asyncio.Future[bool]]] = []
        self._writers: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak refs

    async def record(self, client_id: str, jti: str, expires_at: int) -> bool:
        """True when the jti was new; every copy of a jti but the first is a replay."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(((client_id, jti, expires_at), future))
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
        for (client_id, jti, _), future in batch:
            fresh = (client_id, jti) in inserted
            # The same jti twice in one batch: the first one won, every other copy is a replay.
            inserted.discard((client_id, jti))
            if not future.done():
                future.set_result(fresh)
