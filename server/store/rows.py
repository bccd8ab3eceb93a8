"""Domain objects to and from table rows, for both stores: the tables have the same columns in
the same order in SQLite and PostgreSQL (each store owns its SQL, not these mappings)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from certbound.models import Client, ReferenceToken

__all__ = [
    "CLIENT_COLUMNS",
    "TOKEN_COLUMNS",
    "client_from_row",
    "client_values",
    "reference_token_from_row",
    "reference_token_values",
]

#: `clients` columns read and written, in the order of the two functions below; writes append
#: `auth_method` (derived from the metadata, kept as a column for filtering).
CLIENT_COLUMNS = (
    "client_id, metadata, client_id_issued_at, secret_hash, secret_ciphertext, "
    "secret_expires_at, registration_token_hash"
)
TOKEN_COLUMNS = (
    "token_hash, jti, client_id, subject, scope, audience, issued_at, expires_at, "
    "cnf_x5t_s256, revoked, extra, cnf_jkt"
)


def client_from_row(row: Sequence[Any]) -> Client:
    return Client(
        client_id=row[0],
        metadata=json.loads(row[1]),
        client_id_issued_at=row[2],
        secret_hash=row[3],
        secret_ciphertext=row[4],
        secret_expires_at=row[5],
        registration_token_hash=row[6],
    )


def client_values(client: Client) -> tuple[Any, ...]:
    """CLIENT_COLUMNS, then auth_method."""
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


def reference_token_from_row(row: Sequence[Any]) -> ReferenceToken:
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
        cnf_jkt=row[11],
    )


def reference_token_values(token: ReferenceToken) -> tuple[Any, ...]:
    """TOKEN_COLUMNS."""
    return (
        token.token_hash,
        token.jti,
        token.client_id,
        token.subject,
        token.scope,
        token.audience,
        token.issued_at,
        token.expires_at,
        token.cnf_x5t_s256,
        token.revoked,
        json.dumps(dict(token.extra)),
        token.cnf_jkt,
    )
