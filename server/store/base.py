"""The storage contract: one Protocol, implemented by SQLite now and PostgreSQL later.

Domain objects in, domain objects out; each implementation owns its SQL. Methods that must be
atomic across nodes say so (assertion replay, the first signing key).
"""

from __future__ import annotations

from typing import Protocol

from certbound.models import Client, ReferenceToken, SigningKeyRecord

__all__ = ["ClientExistsError", "Store"]


class ClientExistsError(Exception):
    """create_client was given a client_id that is taken."""


class Store(Protocol):
    async def open(self) -> None:
        """Connect and bring the schema to the current version."""

    async def close(self) -> None: ...

    # clients
    async def get_client(self, client_id: str) -> Client | None: ...

    async def list_clients(
        self, *, limit: int = 100, after: str | None = None, auth_method: str | None = None
    ) -> list[Client]:
        """Clients ordered by client_id, starting after `after` (keyset pagination)."""

    async def create_client(self, client: Client) -> None:
        """Insert; raises ClientExistsError when the client_id is taken."""

    async def update_client(self, client: Client) -> bool:
        """Replace the stored client; False when it does not exist."""

    async def delete_client(self, client_id: str) -> bool:
        """Delete the client and its reference tokens; False when it did not exist."""

    # server signing keys
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        """All keys, newest first."""

    async def add_signing_key(self, key: SigningKeyRecord, *, retire_others_at: int) -> None:
        """Add `key` as the active key and retire every other active key, atomically."""

    async def add_first_signing_key(self, key: SigningKeyRecord) -> bool:
        """Add `key` only if no active key exists (atomic: nodes starting together get one key)."""

    async def delete_signing_keys_retired_before(self, timestamp: int) -> int: ...

    # client assertion replay (RFC 7523 §3 item 7)
    async def record_assertion_jti(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Insert if absent; True when the jti was new. Two concurrent callers: exactly one wins."""

    async def purge_expired(self, now: int) -> int:
        """Drop expired jti rows, expired reference tokens and expired revocations."""

    # reference tokens and revocation
    async def save_reference_token(self, token: ReferenceToken) -> None: ...

    async def get_reference_token(self, token_hash: bytes) -> ReferenceToken | None: ...

    async def revoke_reference_token(self, token_hash: bytes) -> bool: ...

    async def revoke_jwt(self, jti: str, client_id: str, expires_at: int) -> None:
        """Record a revoked JWT access token's jti until it expires."""

    async def is_jwt_revoked(self, jti: str) -> bool: ...
