"""What is particular to the SQLite store: URLs, several processes on one file, busy handling.
The Store contract itself is tested against both backends in test_contract.py."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from certbound.errors import StoreUnavailableError
from certbound.models import Client, SigningKeyRecord
from certbound.store.sqlite import MIGRATIONS, SQLiteStore
from tests.unit.store.test_contract import make_client


def test_sqlite_urls() -> None:
    assert SQLiteStore.from_url("sqlite://:memory:")._path == ":memory:"
    assert SQLiteStore.from_url("sqlite:///data/x.db")._path == "data/x.db"
    assert SQLiteStore.from_url("sqlite:////abs/x.db")._path == "/abs/x.db"


async def test_a_database_at_schema_v1_is_migrated_to_the_change_log(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as old:
        old.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
        old.execute(
            "INSERT INTO clients (client_id, auth_method, metadata, client_id_issued_at) "
            "VALUES ('old', 'none', '{}', 1)"
        )
    store = SQLiteStore(str(path))
    await store.open()
    try:
        assert await store.get_client("old") is not None
        assert await store.latest_client_change() == 0
        assert await store.delete_client("old")
        assert [c for _, c in await store.client_changes_since(0, limit=5)] == ["old"]
    finally:
        await store.close()


async def test_two_connections_writing_at_once_never_fail(tmp_path: Path) -> None:
    """Two workers on one file: WAL answers a stale autocommit write with an immediate "database is
    locked" (no busy handler); the store must absorb that, never surface it as an error."""
    path = str(tmp_path / "shared.db")
    first, second = SQLiteStore(path), SQLiteStore(path)
    await first.open()
    await second.open()

    async def hammer(store: SQLiteStore, prefix: str) -> list[bool]:
        return [await store.record_assertion_jti("c", f"{prefix}{n}", 10**10) for n in range(300)]

    async def transactions(store: SQLiteStore) -> None:
        for n in range(30):
            await store.add_signing_key(SigningKeyRecord(f"k{n}", "ES256", b"c", n), retire_others_at=n)

    async def reads(store: SQLiteStore) -> None:
        # A read left open across an await used to let this process's writes run inside it.
        for _ in range(100):
            await store.list_signing_keys()
            await store.get_client("c")

    results = await asyncio.gather(
        hammer(first, "a"),
        hammer(second, "b"),
        hammer(first, "c"),
        transactions(second),
        reads(first),
        reads(second),
    )
    assert all(results[0])
    assert all(results[1])
    assert all(results[2])
    await first.close()
    await second.close()


async def test_a_failed_jti_write_fails_every_waiting_request(tmp_path: Path) -> None:
    sqlite = SQLiteStore(str(tmp_path / "x.db"))
    await sqlite.open()
    await sqlite.db.execute("DROP TABLE assertion_jtis")
    with pytest.raises(Exception, match="assertion_jtis"):
        await asyncio.gather(*(sqlite.record_assertion_jti("c", f"j{n}", 10**10) for n in range(5)))
    await sqlite.close()


async def test_a_database_locked_for_too_long_is_unavailable_not_an_error(tmp_path: Path) -> None:
    """Another process holding the write lock past busy_timeout: 503 material, not a 500."""
    path = tmp_path / "locked.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.db.execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailableError, match="locked"):
            await store.delete_client("x")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await store.close()


# SPEC §3: database files are private; SQL parameters never reach the log.
async def test_database_files_are_created_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "nested" / "certbound.db"
    sqlite = SQLiteStore(str(path))
    await sqlite.open()
    try:
        await sqlite.create_client(make_client("a"))  # a write: the -wal and -shm files exist now
        for directory in (path.parent, path.parent.parent):
            assert directory.stat().st_mode & 0o777 == 0o700, directory
        files = [path, path.with_name("certbound.db-wal"), path.with_name("certbound.db-shm")]
        assert {file.stat().st_mode & 0o777 for file in files} == {0o600}
    finally:
        await sqlite.close()


async def test_an_existing_open_directory_is_reported_not_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    sqlite = SQLiteStore(str(shared / "certbound.db"))
    with caplog.at_level(logging.WARNING, logger="certbound.files"):
        await sqlite.open()
    await sqlite.close()
    assert shared.stat().st_mode & 0o777 == 0o755  # the operator's directory: not chmod-ed
    assert (shared / "certbound.db").stat().st_mode & 0o777 == 0o600
    assert f"directory {shared} is accessible by other users (mode 755)" in caplog.text


async def test_debug_logging_never_shows_sql_parameters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_hash = b"\x8a\x01SECRET-HMAC-BYTES\xfe" * 2
    client = Client("logged", {"scope": "read"}, 1, secret_hash=secret_hash)
    caplog.set_level(logging.DEBUG)  # --log-level debug: the root logger at DEBUG
    sqlite = SQLiteStore(str(tmp_path / "certbound.db"))
    await sqlite.open()
    try:
        await sqlite.create_client(client)
        await sqlite.update_client(client)
        assert await sqlite.get_client("logged") == client
    finally:
        await sqlite.close()
    for record in caplog.records:
        text = record.getMessage()
        assert "SECRET-HMAC-BYTES" not in text, record.name
        assert "INSERT INTO" not in text, record.name
        assert "UPDATE clients" not in text, record.name
