"""SQLite store (aiosqlite): the embedded default.

WAL mode so readers never wait for the writer; `busy_timeout` so several processes can share one
file; the schema is versioned with `PRAGMA user_version` and migrated forward on open. Writes that
must be atomic across processes use `BEGIN IMMEDIATE` or a single conditional statement.

Every write to `clients` appends to `client_changes` in the same transaction; SQLite has one
writer at a time, so sequence numbers grow in commit order (the Store contract).

Two rules keep writes safe when several workers share the file:
- Every write holds `_write_lock`: the connection is shared by all of this process's coroutines,
  and a statement run while another coroutine's transaction is open would join (and could be
  rolled back with) that transaction.
- A single-statement write is retried when SQLite answers "database is locked" at once: in WAL
  mode an autocommit write whose read snapshot went stale (another process committed in between)
  fails with SQLITE_BUSY_SNAPSHOT without consulting the busy handler; a retry takes a fresh
  snapshot. `BEGIN IMMEDIATE` takes the write lock up front, so the busy handler covers it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from certbound.errors import StoreError, StoreUnavailableError
from certbound.models import Client, ReferenceToken, SigningKeyRecord
from certbound.privatefiles import create_private_file, ensure_private_directory, warn_if_exposed
from certbound.store.base import CLIENT_CHANGE_RETENTION, ClientExistsError
from certbound.store.groupcommit import JtiGroupCommit
from certbound.store.rows import (
    CLIENT_COLUMNS,
    TOKEN_COLUMNS,
    client_from_row,
    client_values,
    reference_token_from_row,
    reference_token_values,
)

__all__ = ["MIGRATIONS", "SQLiteStore"]

#: Schema versions, applied in order; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE clients (
        client_id TEXT PRIMARY KEY,
        auth_method TEXT NOT NULL,
        metadata TEXT NOT NULL,
        client_id_issued_at INTEGER NOT NULL,
        secret_hash BLOB,
        secret_ciphertext BLOB,
        secret_expires_at INTEGER NOT NULL DEFAULT 0,
        registration_token_hash BLOB
    );
    CREATE INDEX clients_auth_method ON clients (auth_method, client_id);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_key_ciphertext BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
    );
    CREATE TABLE assertion_jtis (
        client_id TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (client_id, jti)
    ) WITHOUT ROWID;
    CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);
    CREATE TABLE reference_tokens (
        token_hash BLOB PRIMARY KEY,
        jti TEXT NOT NULL UNIQUE,
        client_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        scope TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        cnf_x5t_s256 TEXT,
        revoked INTEGER NOT NULL DEFAULT 0,
        extra TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX reference_tokens_client ON reference_tokens (client_id);
    CREATE INDEX reference_tokens_expiry ON reference_tokens (expires_at);
    CREATE TABLE revoked_jwts (
        jti TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX revoked_jwts_expiry ON revoked_jwts (expires_at);
    """,
    # v2: the client change log (AUTOINCREMENT: a purged sequence number is never reused) and
    # housekeeping leases.
    """
    CREATE TABLE client_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        changed_at INTEGER NOT NULL
    );
    CREATE INDEX client_changes_time ON client_changes (changed_at);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    """,
    # v3: DPoP (RFC 9449): proof jtis seen (replay state of every worker and node) and the key
    # thumbprint a reference token is bound to.
    """
    CREATE TABLE dpop_jtis (
        jti TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX dpop_jtis_expiry ON dpop_jtis (expires_at);
    ALTER TABLE reference_tokens ADD COLUMN cnf_jkt TEXT;
    """,
    # v4: assertions accepted only because of --assertion-audience legacy, per client.
    """
    CREATE TABLE legacy_audience_uses (
        client_id TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
)

#: How long a single-statement write keeps retrying SQLite's immediate "busy" answers.
_WRITE_RETRY_SECONDS = 10.0
#: Assertion or proof jtis inserted by one statement at most (3 bound parameters each at most;
#: SQLite allows 32766).
_JTI_BATCH = 500

_T = TypeVar("_T")


def _keep_parameters_out_of_debug_logs() -> None:
    """aiosqlite logs every call at DEBUG with its arguments ("executing functools.partial(...,
    'UPDATE clients ...', (..., b'<secret HMAC>', ...))"): with --log-level debug that would write
    secret hashes and encrypted signing keys to the log. Its logger never goes below INFO."""
    driver = logging.getLogger("aiosqlite")
    if driver.level < logging.INFO:  # NOTSET (inherit the root's DEBUG) or DEBUG
        driver.setLevel(logging.INFO)


class SQLiteStore:
    """The Store protocol over one aiosqlite connection (its own thread)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._jtis = JtiGroupCommit(self._insert_jtis, lock=self._write_lock, max_batch=_JTI_BATCH)
        self._proof_jtis = JtiGroupCommit(
            self._insert_proof_jtis, lock=self._write_lock, max_batch=_JTI_BATCH
        )

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """`sqlite:///relative/path`, `sqlite:////absolute/path` or `sqlite://:memory:`."""
        rest = url[len("sqlite://") :]
        if rest in (":memory:", "/:memory:"):
            return cls(":memory:")
        if not rest.startswith("/") or len(rest) < 2:
            raise StoreError(f"not a SQLite URL: {url}")
        return cls(rest[1:])

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def _fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """A read in one call: a cursor left open across an await would keep a read transaction
        open that this process's next write would run inside (and fail with a stale snapshot)."""
        return list(await self.db.execute_fetchall(sql, tuple(params)))

    async def _fetch_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetch_all(sql, params)
        return rows[0] if rows else None

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Cursor:
        """One autocommit write statement (see the module docstring on retries)."""
        async with self._write_lock:
            return await self._retrying(self.db.execute, sql, tuple(params))

    async def _write_fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """One autocommit write statement with RETURNING: its rows."""
        async with self._write_lock:
            return list(await self._retrying(self.db.execute_fetchall, sql, tuple(params)))

    async def _retrying(
        self, call: Callable[[str, tuple[Any, ...]], Awaitable[_T]], sql: str, params: tuple[Any, ...]
    ) -> _T:
        deadline = asyncio.get_running_loop().time() + _WRITE_RETRY_SECONDS
        delay = 0.001
        while True:
            try:
                return await call(sql, params)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                if asyncio.get_running_loop().time() > deadline:
                    raise StoreUnavailableError(f"database {self._path} stayed locked") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """`BEGIN IMMEDIATE` ... `COMMIT` (or `ROLLBACK` on any exception), alone on the connection."""
        async with self._write_lock:
            try:
                await self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc):  # the busy handler waited busy_timeout in vain
                    raise StoreUnavailableError(f"database {self._path} stayed locked") from exc
                raise
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def open(self) -> None:
        _keep_parameters_out_of_debug_logs()
        if self._path != ":memory:":
            self._create_private_files(Path(self._path))
        try:
            self._db = await aiosqlite.connect(self._path, isolation_level=None)
            await self._db.execute("PRAGMA busy_timeout = 10000")
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA synchronous = NORMAL")
            await self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open database {self._path}: {exc}") from exc

    @staticmethod
    def _create_private_files(path: Path) -> None:
        """SPEC §3: database files are 0600 in a 0700 directory (certbound.privatefiles)."""
        try:
            ensure_private_directory(path.parent)
            create_private_file(path)
        except OSError as exc:
            raise StoreError(f"cannot create database {path}: {exc.strerror}") from exc
        for suffix in ("-wal", "-shm"):
            warn_if_exposed(path.with_name(path.name + suffix), "file")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _migrate(self) -> None:
        async with self._transaction() as db:
            async with db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise StoreError(f"database schema v{version} is newer than this certbound")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")

    # clients
    async def get_client(self, client_id: str) -> Client | None:
        row = await self._fetch_one(f"SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?", (client_id,))
        return client_from_row(row) if row else None

    async def list_clients(
        self, *, limit: int = 100, after: str | None = None, auth_method: str | None = None
    ) -> list[Client]:
        sql = f"SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id > ?"
        params: list[Any] = [after or ""]
        if auth_method is not None:
            sql += " AND auth_method = ?"
            params.append(auth_method)
        sql += " ORDER BY client_id LIMIT ?"
        params.append(limit)
        rows = await self._fetch_all(sql, params)
        return [client_from_row(row) for row in rows]

    async def create_client(self, client: Client) -> None:
        try:
            async with self._transaction() as db:
                await db.execute(
                    f"INSERT INTO clients ({CLIENT_COLUMNS}, auth_method) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    client_values(client),
                )
                await self._log_change(db, client.client_id)
        except sqlite3.IntegrityError as exc:
            raise ClientExistsError(client.client_id) from exc

    async def update_client(self, client: Client) -> bool:
        values = client_values(client)
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE clients SET metadata = ?, client_id_issued_at = ?, secret_hash = ?, "
                "secret_ciphertext = ?, secret_expires_at = ?, registration_token_hash = ?, "
                "auth_method = ? WHERE client_id = ?",
                (*values[1:], values[0]),
            )
            await self._log_change(db, client.client_id)
        return cursor.rowcount > 0

    async def delete_client(self, client_id: str) -> bool:
        async with self._transaction() as db:
            await db.execute("DELETE FROM reference_tokens WHERE client_id = ?", (client_id,))
            await db.execute("DELETE FROM legacy_audience_uses WHERE client_id = ?", (client_id,))
            cursor = await db.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))
            await self._log_change(db, client_id)
        return cursor.rowcount > 0

    @staticmethod
    async def _log_change(db: aiosqlite.Connection, client_id: str) -> None:
        await db.execute(
            "INSERT INTO client_changes (client_id, changed_at) VALUES (?, ?)", (client_id, int(time.time()))
        )

    # client change log
    async def latest_client_change(self) -> int:
        row = await self._fetch_one("SELECT max(seq) FROM client_changes")
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def client_changes_since(self, after: int, *, limit: int) -> list[tuple[int, str]]:
        rows = await self._fetch_all(
            "SELECT seq, client_id FROM client_changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [(row[0], row[1]) for row in rows]

    # signing keys
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        rows = await self._fetch_all(
            "SELECT kid, alg, private_key_ciphertext, created_at, retired_at FROM signing_keys "
            "ORDER BY created_at DESC, kid"
        )
        return [SigningKeyRecord(*row) for row in rows]

    @staticmethod
    async def _insert_key(db: aiosqlite.Connection, key: SigningKeyRecord) -> None:
        await db.execute(
            "INSERT INTO signing_keys (kid, alg, private_key_ciphertext, created_at, retired_at) "
            "VALUES (?, ?, ?, ?, NULL)",
            (key.kid, key.alg, key.private_key_ciphertext, key.created_at),
        )

    async def add_signing_key(self, key: SigningKeyRecord, *, retire_others_at: int) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL", (retire_others_at,)
            )
            await self._insert_key(db, key)

    async def add_first_signing_key(self, key: SigningKeyRecord) -> bool:
        async with self._transaction() as db:
            async with db.execute("SELECT 1 FROM signing_keys WHERE retired_at IS NULL LIMIT 1") as cursor:
                exists = await cursor.fetchone() is not None
            if not exists:
                await self._insert_key(db, key)
        return not exists

    async def delete_signing_keys_retired_before(self, timestamp: int) -> int:
        cursor = await self._write(
            "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?", (timestamp,)
        )
        return cursor.rowcount

    # assertion replay
    async def record_assertion_jti(self, client_id: str, jti: str, expires_at: int) -> bool:
        return await self._jtis.record((client_id, jti), expires_at)

    async def _insert_jtis(self, rows: Sequence[tuple[tuple[str, str], int]]) -> set[tuple[str, str]]:
        """One statement for a batch; called with `_write_lock` held (JtiGroupCommit)."""
        sql = (
            "INSERT OR IGNORE INTO assertion_jtis (client_id, jti, expires_at) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(rows))
            + " RETURNING client_id, jti"
        )
        parameters = tuple(itertools.chain.from_iterable((*key, expires_at) for key, expires_at in rows))
        # RETURNING lists exactly the rows this statement inserted (SQLite >= 3.35).
        returned = await self._retrying(self.db.execute_fetchall, sql, parameters)
        return {(row[0], row[1]) for row in returned}

    async def record_proof_jti(self, jti: str, expires_at: int) -> bool:
        return await self._proof_jtis.record(jti, expires_at)

    async def _insert_proof_jtis(self, rows: Sequence[tuple[str, int]]) -> set[str]:
        """One statement for a batch; called with `_write_lock` held (JtiGroupCommit)."""
        sql = (
            "INSERT OR IGNORE INTO dpop_jtis (jti, expires_at) VALUES "
            + ", ".join(["(?, ?)"] * len(rows))
            + " RETURNING jti"
        )
        returned = await self._retrying(self.db.execute_fetchall, sql, tuple(itertools.chain(*rows)))
        return {row[0] for row in returned}

    async def add_legacy_audience_uses(self, uses: Mapping[str, tuple[int, int]]) -> None:
        if not uses:
            return
        await self._write(
            "INSERT INTO legacy_audience_uses (client_id, count, last_seen) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(uses))
            + " ON CONFLICT (client_id) DO UPDATE SET count = count + excluded.count, "
            "last_seen = max(last_seen, excluded.last_seen)",
            [value for client_id, (count, seen) in uses.items() for value in (client_id, count, seen)],
        )

    async def legacy_audience_uses(self, client_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not client_ids:
            return {}
        rows = await self._fetch_all(
            "SELECT client_id, count, last_seen FROM legacy_audience_uses WHERE client_id IN ("
            + ", ".join("?" * len(client_ids))
            + ")",
            client_ids,
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def purge_expired(self, now: int) -> int:
        removed = 0
        for table in ("assertion_jtis", "dpop_jtis", "reference_tokens", "revoked_jwts"):
            cursor = await self._write(f"DELETE FROM {table} WHERE expires_at < ?", (now,))
            removed += cursor.rowcount
        cursor = await self._write(
            "DELETE FROM client_changes WHERE changed_at < ?", (now - CLIENT_CHANGE_RETENTION,)
        )
        return removed + cursor.rowcount

    # housekeeping
    async def acquire_lease(self, name: str, holder: str, *, now: int, seconds: int) -> bool:
        rows = await self._write_fetch(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE leases.expires_at <= ? OR leases.holder = excluded.holder RETURNING 1",
            (name, holder, now + seconds, now),
        )
        return bool(rows)

    # reference tokens and revocation
    async def save_reference_token(self, token: ReferenceToken) -> None:
        await self._write(
            f"INSERT INTO reference_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            reference_token_values(token),
        )

    async def get_reference_token(self, token_hash: bytes) -> ReferenceToken | None:
        row = await self._fetch_one(
            f"SELECT {TOKEN_COLUMNS} FROM reference_tokens WHERE token_hash = ?", (token_hash,)
        )
        return reference_token_from_row(row) if row is not None else None

    async def revoke_reference_token(self, token_hash: bytes) -> bool:
        cursor = await self._write(
            "UPDATE reference_tokens SET revoked = 1 WHERE token_hash = ?", (token_hash,)
        )
        return cursor.rowcount > 0

    async def revoke_jwt(self, jti: str, client_id: str, expires_at: int) -> None:
        await self._write(
            "INSERT OR IGNORE INTO revoked_jwts (jti, client_id, expires_at) VALUES (?, ?, ?)",
            (jti, client_id, expires_at),
        )

    async def is_jwt_revoked(self, jti: str) -> bool:
        return await self._fetch_one("SELECT 1 FROM revoked_jwts WHERE jti = ?", (jti,)) is not None
