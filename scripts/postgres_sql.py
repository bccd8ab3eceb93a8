#!/usr/bin/env python3
"""Run one SQL statement on a PostgreSQL server: `postgres_sql.py URL SQL` (exit 1 with the error).

For the scripts that create and drop their own databases (cluster_demo.sh, bench_anchor.py)
without needing psql: asyncpg is certbound's own dependency, so run it with the project's python.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg


async def _execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: postgres_sql.py URL SQL", file=sys.stderr)
        return 2
    try:
        asyncio.run(_execute(*argv))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"postgres_sql: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
