"""PostgreSQL store (asyncpg): several certbound nodes on one database.

- Migrations are versioned (`certbound_schema`) and applied at open under a transaction-level
  advisory lock, so nodes starting together migrate once and the others wait for it.
- A bounded pool; every operation (acquire, statements, release) is bounded by `timeout`, on the
  client (asyncio) and on the server (`statement_timeout`). A database that is down, unreachable
  or slow raises StoreUnavailableError within that time: nothing hangs.
- Cross-node atomicity lives in the database: one INSERT ... ON CONFLICT DO NOTHING per jti batch,
  a partial unique index that allows one active signing key, an advisory lock that serializes
  rotations and client writes (so client change sequence numbers grow in commit order: a reader
  never skips a change that commits late), and one conditional upsert per lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from certbound.errors import StoreError, StoreUnavailableError
from certbound.models import Client, ReferenceToken, SigningKeyRecord
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

__all__ = ["MIGRATIONS", "PostgresStore"]

#: Schema versions, applied in order; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE clients (
        client_id TEXT COLLATE "C" PRIMARY KEY,
        auth_method TEXT NOT NULL,
        metadata TEXT NOT NULL,
        client_id_issued_at BIGINT NOT NULL,
        secret_hash BYTEA,
        secret_ciphertext BYTEA,
        secret_expires_at BIGINT NOT NULL DEFAULT 0,
        registration_token_hash BYTEA
    );
    CREATE INDEX clients_auth_method ON clients (auth_method, client_id);
    CREATE TABLE client_changes (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        client_id TEXT NOT NULL,
        changed_at BIGINT NOT NULL
    );
    CREATE INDEX client_changes_time ON client_changes (changed_at);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_key_ciphertext BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        retired_at BIGINT
    );
    CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((retired_at IS NULL))
        WHERE retired_at IS NULL;
    CREATE TABLE assertion_jtis (
        client_id TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (client_id, jti)
    );
    CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);
    CREATE TABLE reference_tokens (
        token_hash BYTEA PRIMARY KEY,
        jti TEXT NOT NULL UNIQUE,
        client_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        scope TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        cnf_x5t_s256 TEXT,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        extra TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX reference_tokens_client ON reference_tokens (client_id);
    CREATE INDEX reference_tokens_expiry ON reference_tokens (expires_at);
    CREATE TABLE revoked_jwts (
        jti TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX revoked_jwts_expiry ON revoked_jwts (expires_at);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    """,
    # v2: DPoP (RFC 9449): proof jtis seen (replay state of every node) and the key thumbprint a
    # reference token is bound to.
    """
    CREATE TABLE dpop_jtis (
        jti TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX dpop_jtis_expiry ON dpop_jtis (expires_at);
    ALTER TABLE reference_tokens ADD COLUMN cnf_jkt TEXT;
    """,
    # v3: assertions accepted only because of --assertion-audience legacy, per client.
    """
    CREATE TABLE legacy_audience_uses (
        client_id TEXT PRIMARY KEY,
        count BIGINT NOT NULL,
        last_seen BIGINT NOT NULL
    );
    """,
)

# Advisory lock keys (one 64-bit space per database, shared with other applications: ours
# start with the ASCII of "certbnd").
_LOCK_MIGRATIONS = 0x63657274626E6401
_LOCK_SIGNING_KEYS = 0x63657274626E6402
_LOCK_CLIENT_CHANGES = 0x63657274626E6403

#: Migrations may take longer than a request: they run under this statement timeout (seconds).
_MIGRATION_TIMEOUT = 120
#: Assertion jtis inserted by one statement at most.
_JTI_BATCH = 1000
#: Rows one purge statement deletes at most, so a long backlog never meets the statement timeout.
_PURGE_BATCH = 5000

#: What "the database does not answer" looks like: connection refused, reset or timed out, the
#: server shutting down or refusing connections, a statement cancelled by statement_timeout.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)
#: What makes opening fail: the above, and the server's refusals (no such database, bad password).
_OPEN_FAILURES: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *_UNAVAILABLE)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset on release (`RESET ALL`, `UNLISTEN *`, ...: one more round trip per
    operation). Nothing here changes session state: settings are per transaction (SET LOCAL),
    advisory locks too (pg_advisory_xact_lock), no LISTEN, no cursor outside a transaction; an
    open transaction is still rolled back by asyncpg itself before this runs."""


def _where(dsn: str) -> str:
    """host:port/database of a URL, for messages (never the password)."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class PostgresStore:
    """The Store protocol over an asyncpg pool of at most `pool_size` connections."""

    def __init__(self, dsn: str, *, pool_size: int = 10, timeout: float = 5.0) -> None:
        """`timeout`: seconds one operation may take, connecting included."""
        self._dsn = dsn
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._jtis = JtiGroupCommit(self._insert_jtis, lock=asyncio.Lock(), max_batch=_JTI_BATCH)
        self._proof_jtis = JtiGroupCommit(self._insert_proof_jtis, lock=asyncio.Lock(), max_batch=_JTI_BATCH)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._timeout,  # connect
                command_timeout=self._timeout,
                reset=_keep_session,
                server_settings={
                    "application_name": "certbound",
                    "statement_timeout": str(int(self._timeout * 1000)),
                    "idle_in_transaction_session_timeout": str(int(self._timeout * 2000)),
                },
            )
            await self._migrate()
        except _OPEN_FAILURES as exc:
            await self.close()
            raise StoreError(f"cannot open PostgreSQL database {_where(self._dsn)}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except _UNAVAILABLE:
                pool.terminate()

    @asynccontextmanager
    async def _connection(self, seconds: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one operation; everything inside is bounded by `seconds`
        (default: the store's timeout)."""
        seconds = seconds or self._timeout
        try:
            async with asyncio.timeout(seconds), self.pool.acquire(timeout=seconds) as connection:
                yield connection
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"PostgreSQL {_where(self._dsn)} did not answer: {exc!r}") from exc

    @asynccontextmanager
    async def _transaction(
        self, lock: int | None = None, seconds: float | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """A transaction, holding the advisory lock `lock` until it ends when one is named."""
        async with self._connection(seconds) as connection, connection.transaction():
            if lock is not None:
                await connection.execute("SELECT pg_advisory_xact_lock($1)", lock)
            yield connection

    async def _migrate(self) -> None:
        """Under the lock, so a node that starts during another's migration waits for it (the
        wait counts against the migration timeout, not the per-request one)."""
        timeout = _MIGRATION_TIMEOUT
        async with self._transaction(seconds=timeout) as connection:
            await connection.execute(f"SET LOCAL statement_timeout = '{timeout}s'", timeout=timeout)
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_MIGRATIONS, timeout=timeout)
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS certbound_schema (version INTEGER NOT NULL)", timeout=timeout
            )
            version = await connection.fetchval("SELECT max(version) FROM certbound_schema") or 0
            if version > len(MIGRATIONS):
                raise StoreError(f"database schema v{version} is newer than this certbound")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                await connection.execute(script, timeout=timeout)
                await connection.execute("INSERT INTO certbound_schema (version) VALUES ($1)", number)

    # clients
    async def get_client(self, client_id: str) -> Client | None:
        if "\x00" in client_id:
            return None  # PostgreSQL text cannot hold NUL, so no stored client_id has one
        async with self._connection() as connection:
            row = await connection.fetchrow(
                f"SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1", client_id
            )
        return client_from_row(row) if row else None

    async def list_clients(
        self, *, limit: int = 100, after: str | None = None, auth_method: str | None = None
    ) -> list[Client]:
        sql = f"SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id > $1"
        params: list[Any] = [after or ""]
        if auth_method is not None:
            sql += " AND auth_method = $2"
            params.append(auth_method)
        sql += f" ORDER BY client_id LIMIT ${len(params) + 1}"
        params.append(limit)
        async with self._connection() as connection:
            rows = await connection.fetch(sql, *params)
        return [client_from_row(row) for row in rows]

    async def create_client(self, client: Client) -> None:
        try:
            async with self._transaction(_LOCK_CLIENT_CHANGES) as connection:
                await connection.execute(
                    f"INSERT INTO clients ({CLIENT_COLUMNS}, auth_method) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    *client_values(client),
                )
                await self._log_change(connection, client.client_id)
        except asyncpg.UniqueViolationError as exc:
            raise ClientExistsError(client.client_id) from exc

    async def update_client(self, client: Client) -> bool:
        values = client_values(client)
        async with self._transaction(_LOCK_CLIENT_CHANGES) as connection:
            status = await connection.execute(
                "UPDATE clients SET metadata = $2, client_id_issued_at = $3, secret_hash = $4, "
                "secret_ciphertext = $5, secret_expires_at = $6, registration_token_hash = $7, "
                "auth_method = $8 WHERE client_id = $1",
                *values,
            )
            await self._log_change(connection, client.client_id)
        return _row_count(status) > 0

    async def delete_client(self, client_id: str) -> bool:
        async with self._transaction(_LOCK_CLIENT_CHANGES) as connection:
            await connection.execute("DELETE FROM reference_tokens WHERE client_id = $1", client_id)
            await connection.execute("DELETE FROM legacy_audience_uses WHERE client_id = $1", client_id)
            status = await connection.execute("DELETE FROM clients WHERE client_id = $1", client_id)
            await self._log_change(connection, client_id)
        return _row_count(status) > 0

    @staticmethod
    async def _log_change(connection: asyncpg.Connection, client_id: str) -> None:
        await connection.execute(
            "INSERT INTO client_changes (client_id, changed_at) VALUES ($1, $2)", client_id, int(time.time())
        )

    # client change log
    async def latest_client_change(self) -> int:
        async with self._connection() as connection:
            latest = await connection.fetchval("SELECT max(seq) FROM client_changes")
        return int(latest or 0)

    async def client_changes_since(self, after: int, *, limit: int) -> list[tuple[int, str]]:
        async with self._connection() as connection:
            rows = await connection.fetch(
                "SELECT seq, client_id FROM client_changes WHERE seq > $1 ORDER BY seq LIMIT $2", after, limit
            )
        return [(row[0], row[1]) for row in rows]

    # signing keys
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        async with self._connection() as connection:
            rows = await connection.fetch(
                "SELECT kid, alg, private_key_ciphertext, created_at, retired_at FROM signing_keys "
                "ORDER BY created_at DESC, kid"
            )
        return [SigningKeyRecord(*row) for row in rows]

    async def add_signing_key(self, key: SigningKeyRecord, *, retire_others_at: int) -> None:
        async with self._transaction(_LOCK_SIGNING_KEYS) as connection:
            await connection.execute(
                "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL", retire_others_at
            )
            await connection.execute(
                "INSERT INTO signing_keys (kid, alg, private_key_ciphertext, created_at) "
                "VALUES ($1, $2, $3, $4)",
                key.kid,
                key.alg,
                key.private_key_ciphertext,
                key.created_at,
            )

    async def add_first_signing_key(self, key: SigningKeyRecord) -> bool:
        # signing_keys_one_active turns the second of two concurrent first keys into a conflict.
        async with self._connection() as connection:
            inserted = await connection.fetchval(
                "INSERT INTO signing_keys (kid, alg, private_key_ciphertext, created_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                key.kid,
                key.alg,
                key.private_key_ciphertext,
                key.created_at,
            )
        return inserted is not None

    async def delete_signing_keys_retired_before(self, timestamp: int) -> int:
        async with self._connection() as connection:
            status = await connection.execute(
                "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1", timestamp
            )
        return _row_count(status)

    # assertion replay
    async def record_assertion_jti(self, client_id: str, jti: str, expires_at: int) -> bool:
        return await self._bounded(self._jtis.record((client_id, jti), expires_at))

    async def record_proof_jti(self, jti: str, expires_at: int) -> bool:
        return await self._bounded(self._proof_jtis.record(jti, expires_at))

    async def _bounded(self, recording: Awaitable[bool]) -> bool:
        try:
            # Bounds the wait for the batch in flight too, not only this request's own statement.
            async with asyncio.timeout(self._timeout):
                return await recording
        except TimeoutError as exc:
            raise StoreUnavailableError(f"PostgreSQL {_where(self._dsn)} did not answer") from exc

    async def _insert_proof_jtis(self, rows: Sequence[tuple[str, int]]) -> set[str]:
        jtis, expiries = zip(*rows, strict=True)
        async with self._connection() as connection:
            inserted = await connection.fetch(
                "INSERT INTO dpop_jtis (jti, expires_at) "
                "SELECT * FROM unnest($1::text[], $2::bigint[]) "
                "ON CONFLICT DO NOTHING RETURNING jti",
                jtis,
                expiries,
            )
        return {row[0] for row in inserted}

    async def _insert_jtis(self, rows: Sequence[tuple[tuple[str, str], int]]) -> set[tuple[str, str]]:
        client_ids, jtis, expiries = zip(*((*key, expires_at) for key, expires_at in rows), strict=True)
        async with self._connection() as connection:
            # A jti twice in one batch: ON CONFLICT DO NOTHING skips the second copy.
            inserted = await connection.fetch(
                "INSERT INTO assertion_jtis (client_id, jti, expires_at) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "
                "ON CONFLICT DO NOTHING RETURNING client_id, jti",
                client_ids,
                jtis,
                expiries,
            )
        return {(row[0], row[1]) for row in inserted}

    async def add_legacy_audience_uses(self, uses: Mapping[str, tuple[int, int]]) -> None:
        if not uses:
            return
        client_ids = list(uses)
        async with self._connection() as connection:
            await connection.execute(
                "INSERT INTO legacy_audience_uses (client_id, count, last_seen) "
                "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) "
                "ON CONFLICT (client_id) DO UPDATE SET "
                "count = legacy_audience_uses.count + excluded.count, "
                "last_seen = GREATEST(legacy_audience_uses.last_seen, excluded.last_seen)",
                client_ids,
                [uses[client_id][0] for client_id in client_ids],
                [uses[client_id][1] for client_id in client_ids],
            )

    async def legacy_audience_uses(self, client_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not client_ids:
            return {}
        async with self._connection() as connection:
            rows = await connection.fetch(
                "SELECT client_id, count, last_seen FROM legacy_audience_uses "
                "WHERE client_id = ANY($1::text[])",
                list(client_ids),
            )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def purge_expired(self, now: int) -> int:
        removed = 0
        for table, column, before in (
            ("assertion_jtis", "expires_at", now),
            ("dpop_jtis", "expires_at", now),
            ("reference_tokens", "expires_at", now),
            ("revoked_jwts", "expires_at", now),
            ("client_changes", "changed_at", now - CLIENT_CHANGE_RETENTION),
        ):
            while True:
                async with self._connection() as connection:
                    status = await connection.execute(
                        f"DELETE FROM {table} WHERE ctid IN "
                        f"(SELECT ctid FROM {table} WHERE {column} < $1 LIMIT {_PURGE_BATCH})",
                        before,
                    )
                count = _row_count(status)
                removed += count
                if count < _PURGE_BATCH:
                    break
        return removed

    # housekeeping
    async def acquire_lease(self, name: str, holder: str, *, now: int, seconds: int) -> bool:
        async with self._connection() as connection:
            taken = await connection.fetchval(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder RETURNING 1",
                name,
                holder,
                now + seconds,
                now,
            )
        return taken is not None

    # reference tokens and revocation
    async def save_reference_token(self, token: ReferenceToken) -> None:
        async with self._connection() as connection:
            await connection.execute(
                f"INSERT INTO reference_tokens ({TOKEN_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                *reference_token_values(token),
            )

    async def get_reference_token(self, token_hash: bytes) -> ReferenceToken | None:
        async with self._connection() as connection:
            row = await connection.fetchrow(
                f"SELECT {TOKEN_COLUMNS} FROM reference_tokens WHERE token_hash = $1", token_hash
            )
        return reference_token_from_row(row) if row is not None else None

    async def revoke_reference_token(self, token_hash: bytes) -> bool:
        async with self._connection() as connection:
            status = await connection.execute(
                "UPDATE reference_tokens SET revoked = TRUE WHERE token_hash = $1", token_hash
            )
        return _row_count(status) > 0

    async def revoke_jwt(self, jti: str, client_id: str, expires_at: int) -> None:
        async with self._connection() as connection:
            await connection.execute(
                "INSERT INTO revoked_jwts (jti, client_id, expires_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                jti,
                client_id,
                expires_at,
            )

    async def is_jwt_revoked(self, jti: str) -> bool:
        async with self._connection() as connection:
            found = await connection.fetchval("SELECT 1 FROM revoked_jwts WHERE jti = $1", jti)
        return found is not None


def _row_count(status: str) -> int:
    """The row count of a command status such as `DELETE 3` or `UPDATE 1`."""
    return int(status.rsplit(" ", 1)[-1])
