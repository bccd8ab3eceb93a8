"""The storage contract: one Protocol, implemented by SQLite (store/sqlite.py) and PostgreSQL
(store/postgres.py).

Domain objects in, domain objects out; each implementation owns its SQL. Methods that must be
atomic across processes and nodes say so (assertion and proof replay, the first signing key, leases).
Every implementation raises StoreUnavailableError when the database does not answer in time, so
callers (and the error middleware) can tell "try again" from a bug.

Adding a method: declare it here with its contract in the docstring, append a migration to both
`MIGRATIONS` tuples when it needs a table (never edit a released entry), implement it in both
stores, and add its tests to tests/unit/store/test_contract.py, which runs every test against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from certbound.models import Client, ReferenceToken, SigningKeyRecord

__all__ = ["CLIENT_CHANGE_RETENTION", "ClientExistsError", "Store", "issuer_jti_scope"]

#: Seconds a row of the client change log is kept. A process reads the log every fraction of a
#: second and starts over from the newest entry when it fell behind (certbound.clients), so this
#: only has to outlast a slow poll.
CLIENT_CHANGE_RETENTION = 600


class ClientExistsError(Exception):
    """create_client was given a client_id that is taken."""


def issuer_jti_scope(issuer: str) -> str:
    """What `record_assertion_jti` takes as client_id for the tokens of the federated `issuer` (its
    identifier, the tokens' `iss`: SPEC §13, a jti is used once per issuer, whichever client
    presents it, whatever name the federation file gives the issuer). It starts with a control
    character, which no client_id may hold (certbound.management), so an issuer's jtis and a
    client's never meet."""
    return "\x1fissuer\x1f" + issuer


class Store(Protocol):
    async def open(self) -> None:
        """Connect and bring the schema to the current version."""

    async def close(self) -> None: ...

    # clients; every write also appends the client_id to the change log, in the same transaction
    async def get_client(self, client_id: str) -> Client | None: ...

    async def list_clients(
        self, *, limit: int = 100, after: str | None = None, auth_method: str | None = None
    ) -> list[Client]:
        """Clients ordered by client_id (byte order), starting after `after` (keyset pagination)."""

    async def create_client(self, client: Client) -> None:
        """Insert; raises ClientExistsError when the client_id is taken."""

    async def update_client(self, client: Client) -> bool:
        """Replace the stored client; False when it does not exist."""

    async def delete_client(self, client_id: str) -> bool:
        """Delete the client and its reference tokens; False when it did not exist."""

    # the client change log (SPEC §3: client changes reach every worker and node within 1 s)
    async def latest_client_change(self) -> int:
        """The sequence number of the newest change (0 when there is none)."""

    async def client_changes_since(self, after: int, *, limit: int) -> list[tuple[int, str]]:
        """(sequence, client_id) of the changes after `after`, oldest first, at most `limit`.
        Sequence numbers grow in commit order: a reader that saw n never later finds a new m < n."""

    # server signing keys
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        """All keys, newest first."""

    async def add_signing_key(self, key: SigningKeyRecord, *, retire_others_at: int) -> None:
        """Add `key` as the active key and retire every other active key, atomically."""

    async def add_first_signing_key(self, key: SigningKeyRecord) -> bool:
        """Add `key` only if no active key exists (atomic: nodes starting together get one key)."""

    async def delete_signing_keys_retired_before(self, timestamp: int) -> int: ...

    # client assertion replay (RFC 7523 §3 item 7; SPEC §13: issuer_jti_scope for federated tokens)
    async def record_assertion_jti(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Insert if absent; True when the jti was new. Two concurrent callers: exactly one wins."""

    # DPoP proof replay (RFC 9449 §11.1)
    async def record_proof_jti(self, jti: str, expires_at: int) -> bool:
        """Insert if absent; True when the proof jti was new, whoever sent it. Two concurrent
        callers: exactly one wins."""

    # assertions accepted only because of --assertion-audience legacy (certbound.legacyaudience)
    async def add_legacy_audience_uses(self, uses: Mapping[str, tuple[int, int]]) -> None:
        """Add each client's (count, last seen) to its totals, keeping the latest last-seen time;
        one statement for the batch. Deleting a client deletes its totals."""

    async def legacy_audience_uses(self, client_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(count, last seen) of each of `client_ids` (at most 1000) that has any."""

    async def purge_expired(self, now: int) -> int:
        """Drop expired jti rows (assertions and proofs), expired reference tokens, expired
        revocations and client change log rows older than CLIENT_CHANGE_RETENTION."""

    # housekeeping
    async def acquire_lease(self, name: str, holder: str, *, now: int, seconds: int) -> bool:
        """Take or renew the lease `name` for `seconds` when it is free, expired or already
        `holder`'s; False when another holder has it. Atomic: one holder at a time."""

    # reference tokens and revocation
    async def save_reference_token(self, token: ReferenceToken) -> None: ...

    async def get_reference_token(self, token_hash: bytes) -> ReferenceToken | None: ...

    async def revoke_reference_token(self, token_hash: bytes) -> bool: ...

    async def revoke_jwt(self, jti: str, client_id: str, expires_at: int) -> None:
        """Record a revoked JWT access token's jti until it expires."""

    async def is_jwt_revoked(self, jti: str) -> bool: ...
