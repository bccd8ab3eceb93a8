"""SQLite store (aiosqlite): the embedded default.

WAL mode so readers never wait for the writer; `busy_timeout` so several processes can share one
file; the schema is versioned with `PRAGMA user_version` and migrated forward on open. Writes that
must be atomic across processes use `BEGIN IMMEDIATE` or a single conditional statement.

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
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from certbound.errors import StoreError
from certbound.models import Client, ReferenceToken, SigningKeyRecord
from certbound.privatefiles import create_private_file, ensure_private_directory, warn_if_exposed
from certbound.store.base import ClientExistsError

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
)

#: How long a single-statement write keeps retrying SQLite's immediate "busy" answers.
_WRITE_RETRY_SECONDS = 10.0
#: Assertion jtis inserted by one statement at most (3 bound parameters each; SQLite allows 32766).
_JTI_BATCH = 500

_T = TypeVar("_T")

_CLIENT_COLUMNS = (
    "client_id, metadata, client_id_issued_at, secret_hash, secret_ciphertext, "
    "secret_expires_at, registration_token_hash"
)
_TOKEN_COLUMNS = (
    "token_hash, jti, client_id, subject, scope, audience, issued_at, expires_at, "
    "cnf_x5t_s256, revoked, extra"
)


def _client_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Client:
    return Client(
        client_id=row[0],
        metadata=json.loads(row[1]),
        client_id_issued_at=row[2],
        secret_hash=row[3],
        secret_ciphertext=row[4],
        secret_expires_at=row[5],
        registration_token_hash=row[6],
    )


def _client_values(client: Client) -> tuple[Any, ...]:
    return (
        client.client_id,
        json.dumps(dict(client.metadata), separators=(",", ":")),
        client.client_id_issued_at,
        client.secret_hash,
        client.secret_ciphertext,
        client.secret_expires_at,
        client.registration_token_hash,
        client.auth_method,
    )


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
        self._pending_jtis: list[tuple[str, str, int, asyncio.Future[bool]]] = []
        self._jti_writers: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak refs

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

    async def _retrying(
        self, call: Callable[[str, tuple[Any, ...]], Awaitable[_T]], sql: str, params: tuple[Any, ...]
    ) -> _T:
        deadline = asyncio.get_running_loop().time() + _WRITE_RETRY_SECONDS
        delay = 0.001
        while True:
            try:
                return await call(sql, params)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """`BEGIN IMMEDIATE` ... `COMMIT` (or `ROLLBACK` on any exception), alone on the connection."""
        async with self._write_lock:
            await self.db.execute("BEGIN IMMEDIATE")
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
        row = await self._fetch_one(
            f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE client_id = ?", (client_id,)
        )
        return _client_from_row(row) if row else None

    async def list_clients(
        self, *, limit: int = 100, after: str | None = None, auth_method: str | None = None
    ) -> list[Client]:
        sql = f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE client_id > ?"
        params: list[Any] = [after or ""]
        if auth_method is not None:
            sql += " AND auth_method = ?"
            params.append(auth_method)
        sql += " ORDER BY client_id LIMIT ?"
        params.append(limit)
        rows = await self._fetch_all(sql, params)
        return [_client_from_row(row) for row in rows]

    async def create_client(self, client: Client) -> None:
        try:
            await self._write(
                f"INSERT INTO clients ({_CLIENT_COLUMNS}, auth_method) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _client_values(client),
            )
        except sqlite3.IntegrityError as exc:
            raise ClientExistsError(client.client_id) from exc

    async def update_client(self, client: Client) -> bool:
        values = _client_values(client)
        cursor = await self._write(
            "UPDATE clients SET metadata = ?, client_id_issued_at = ?, secret_hash = ?, "
            "secret_ciphertext = ?, secret_expires_at = ?, registration_token_hash = ?, "
            "auth_method = ? WHERE client_id = ?",
            (*values[1:], values[0]),
        )
        return cursor.rowcount > 0

    async def delete_client(self, client_id: str) -> bool:
        async with self._transaction() as db:
            await db.execute("DELETE FROM reference_tokens WHERE client_id = ?", (client_id,))
            cursor = await db.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))
        return cursor.rowcount > 0

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
        """Group commit: requests that arrive while a write is in progress are inserted together in
        one statement, so a burst of assertions costs one commit, not one each."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending_jtis.append((client_id, jti, expires_at, future))
        if len(self._pending_jtis) == 1:
            self._start_jti_writer()
        return await future

    def _start_jti_writer(self) -> None:
        task = asyncio.get_running_loop().create_task(self._insert_pending_jtis())
        self._jti_writers.add(task)
        task.add_done_callback(self._jti_writers.discard)

    async def _insert_pending_jtis(self) -> None:
        async with self._write_lock:
            batch, self._pending_jtis = self._pending_jtis[:_JTI_BATCH], self._pending_jtis[_JTI_BATCH:]
            if self._pending_jtis:
                self._start_jti_writer()
            rows = [(client_id, jti, expires_at) for client_id, jti, expires_at, _ in batch]
            sql = (
                "INSERT OR IGNORE INTO assertion_jtis (client_id, jti, expires_at) VALUES "
                + ", ".join(["(?, ?, ?)"] * len(rows))
                + " RETURNING client_id, jti"
            )
            try:
                # RETURNING lists exactly the rows this statement inserted (SQLite >= 3.35).
                inserted = {
                    (row[0], row[1])
                    for row in await self._retrying(
                        self.db.execute_fetchall, sql, tuple(itertools.chain(*rows))
                    )
                }
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
        for client_id, jti, _, future in batch:
            fresh = (client_id, jti) in inserted
            # The same jti twice in one batch: the first one won, every other copy is a replay.
            inserted.discard((client_id, jti))
            if not future.done():
                future.set_result(fresh)

    async def purge_expired(self, now: int) -> int:
        removed = 0
        for table in ("assertion_jtis", "reference_tokens", "revoked_jwts"):
            cursor = await self._write(f"DELETE FROM {table} WHERE expires_at < ?", (now,))
            removed += cursor.rowcount
        return removed

    # reference tokens and revocation
    async def save_reference_token(self, token: ReferenceToken) -> None:
        await self._write(
            f"INSERT INTO reference_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token.token_hash,
                token.jti,
                token.client_id,
                token.subject,
                token.scope,
                token.audience,
                token.issued_at,
                token.expires_at,
                token.cnf_x5t_s256,
                int(token.revoked),
                json.dumps(dict(token.extra)),
            ),
        )

    async def get_reference_token(self, token_hash: bytes) -> ReferenceToken | None:
        row = await self._fetch_one(
            f"SELECT {_TOKEN_COLUMNS} FROM reference_tokens WHERE token_hash = ?", (token_hash,)
        )
        if row is None:
            return None
        return ReferenceToken(
            token_hash=row[0],
            jti=row[1],
            client_id=row[2],
            subject=row[3],
            scope=row[4],
            audience=row[5],
            issued_at=row[6],
            expires_at=row[7],
            cnf_x5t_s256=row[8],
            revoked=bool(row[9]),
            extra=json.loads(row[10]),
        )

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
