"""The Store contract, run against SQLite (the PostgreSQL implementation will join the params)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from certbound.models import Client, ReferenceToken, SigningKeyRecord
from certbound.store import ClientExistsError, Store
from certbound.store.sqlite import SQLiteStore


def make_client(client_id: str, method: str = "client_secret_basic") -> Client:
    return Client(
        client_id=client_id,
        metadata={"token_endpoint_auth_method": method, "scope": "read", "x-custom": [1, 2]},
        client_id_issued_at=100,
        secret_hash=b"h" * 32,
    )


async def test_client_crud(store: Store) -> None:
    await store.create_client(make_client("a"))
    with pytest.raises(ClientExistsError):
        await store.create_client(make_client("a"))
    loaded = await store.get_client("a")
    assert loaded == make_client("a")
    assert await store.get_client("missing") is None
    updated = Client("a", {"token_endpoint_auth_method": "client_secret_post"}, 5)
    assert await store.update_client(updated)
    assert (await store.get_client("a")) == updated
    assert not await store.update_client(make_client("zzz"))
    assert await store.delete_client("a")
    assert not await store.delete_client("a")


async def test_list_clients_paginates_and_filters(store: Store) -> None:
    for index in range(5):
        await store.create_client(make_client(f"c{index}", "none" if index % 2 else "client_secret_basic"))
    page = await store.list_clients(limit=2)
    assert [c.client_id for c in page] == ["c0", "c1"]
    page = await store.list_clients(limit=10, after="c1")
    assert [c.client_id for c in page] == ["c2", "c3", "c4"]
    assert [c.client_id for c in await store.list_clients(auth_method="none")] == ["c1", "c3"]


async def test_assertion_jti_is_recorded_once_even_concurrently(store: Store) -> None:
    results = await asyncio.gather(*(store.record_assertion_jti("c", "j1", 10**10) for _ in range(10)))
    assert results.count(True) == 1
    assert await store.record_assertion_jti("other-client", "j1", 10**10)


async def test_purge_expired(store: Store) -> None:
    await store.record_assertion_jti("c", "old", 50)
    await store.record_assertion_jti("c", "new", 500)
    await store.revoke_jwt("jti-old", "c", 50)
    assert await store.purge_expired(100) == 2
    assert await store.record_assertion_jti("c", "old", 500)
    assert not await store.record_assertion_jti("c", "new", 500)
    assert not await store.is_jwt_revoked("jti-old")


async def test_first_signing_key_only_once(store: Store) -> None:
    first = SigningKeyRecord("k1", "ES256", b"c1", 1)
    second = SigningKeyRecord("k2", "ES256", b"c2", 2)
    assert await store.add_first_signing_key(first)
    assert not await store.add_first_signing_key(second)
    assert [k.kid for k in await store.list_signing_keys()] == ["k1"]


async def test_rotation_retires_the_active_key(store: Store) -> None:
    await store.add_first_signing_key(SigningKeyRecord("k1", "ES256", b"c1", 1))
    await store.add_signing_key(SigningKeyRecord("k2", "ES256", b"c2", 2), retire_others_at=2)
    keys = {k.kid: k for k in await store.list_signing_keys()}
    assert keys["k1"].retired_at == 2
    assert keys["k2"].active
    assert await store.delete_signing_keys_retired_before(3) == 1


async def test_reference_tokens_and_revocation(store: Store) -> None:
    token = ReferenceToken(b"t" * 32, "jti", "c", "c", "read", "aud", 1, 10**10, "x5t", extra={"a": 1})
    await store.create_client(make_client("c"))
    await store.save_reference_token(token)
    assert await store.get_reference_token(b"t" * 32) == token
    assert await store.revoke_reference_token(b"t" * 32)
    revoked = await store.get_reference_token(b"t" * 32)
    assert revoked is not None
    assert revoked.revoked
    await store.delete_client("c")
    assert await store.get_reference_token(b"t" * 32) is None


async def test_jwt_revocation(store: Store) -> None:
    assert not await store.is_jwt_revoked("j")
    await store.revoke_jwt("j", "c", 10**10)
    await store.revoke_jwt("j", "c", 10**10)
    assert await store.is_jwt_revoked("j")


async def test_file_database_survives_reopen_and_migrates_once(tmp_path: Path) -> None:
    path = str(tmp_path / "x" / "db.sqlite")
    first = SQLiteStore(path)
    await first.open()
    await first.create_client(make_client("kept"))
    await first.close()
    second = SQLiteStore.from_url(f"sqlite:///{path}")
    await second.open()
    assert await second.get_client("kept") is not None
    await second.close()


def test_sqlite_urls() -> None:
    assert SQLiteStore.from_url("sqlite://:memory:")._path == ":memory:"
    assert SQLiteStore.from_url("sqlite:///data/x.db")._path == "data/x.db"
    assert SQLiteStore.from_url("sqlite:////abs/x.db")._path == "/abs/x.db"


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


async def test_a_burst_of_jtis_is_committed_together_and_each_answered(store: Store) -> None:
    jtis = [f"j{n % 50}" for n in range(200)]  # every jti four times, in one burst
    results = await asyncio.gather(*(store.record_assertion_jti("c", jti, 10**10) for jti in jtis))
    for jti in set(jtis):
        assert [ok for name, ok in zip(jtis, results, strict=True) if name == jti].count(True) == 1
    assert sum(results) == 50
    assert not await store.record_assertion_jti("c", "j7", 10**10)


async def test_a_failed_jti_write_fails_every_waiting_request(tmp_path: Path) -> None:
    sqlite = SQLiteStore(str(tmp_path / "x.db"))
    await sqlite.open()
    await sqlite.db.execute("DROP TABLE assertion_jtis")
    with pytest.raises(Exception, match="assertion_jtis"):
        await asyncio.gather(*(sqlite.record_assertion_jti("c", f"j{n}", 10**10) for n in range(5)))
    await sqlite.close()


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
