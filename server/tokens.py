"""Access-token minting: RFC 9068 JWT access tokens and stored reference (opaque) tokens.

Both carry the RFC 8705 §3 confirmation `cnf: {"x5t#S256": ...}` when the client is bound to its
certificate, and the RFC 9449 §6 one `cnf: {"jkt": ...}` when the request proved a DPoP key (both
members when both apply, SPEC §12). A JWT costs no database write; a reference token is one insert
(it must be introspectable from any node).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_string  # the C-accelerated one

from certbound.keys import KeyRing
from certbound.models import Client, ReferenceToken
from certbound.store import Store

__all__ = [
    "AccessTokenIssuer",
    "IssuedToken",
    "access_token_claims",
    "confirmation_members",
    "reference_token_hash",
    "token_type",
]

_JWT_TYP = "at+jwt"  # RFC 9068 §2.1


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    #: RFC 6749 §7.1 `token_type`: `Bearer`, or `DPoP` for a DPoP-bound token (RFC 9449 §5).
    token_type: str = "Bearer"


def token_type(jkt: str | None) -> str:
    """RFC 9449 §5: `DPoP` for a token bound to a DPoP key, else RFC 6750's `Bearer`."""
    return "DPoP" if jkt is not None else "Bearer"


def confirmation_members(x5t_s256: str | None, jkt: str | None) -> dict[str, str]:
    """The `cnf` members of a token (RFC 8705 §3.1, RFC 9449 §6.1); empty when it is unbound."""
    members: dict[str, str] = {}
    if x5t_s256 is not None:
        members["x5t#S256"] = x5t_s256
    if jkt is not None:
        members["jkt"] = jkt
    return members


def access_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    audience: str,
    issued_at: int,
    expires_at: int,
    jti: str,
    scope: str,
    x5t_s256: str | None,
    jkt: str | None = None,
) -> bytes:
    """The RFC 9068 §2.2 claims (plus `cnf`, RFC 8705 §3.1 and RFC 9449 §6.1) as compact JSON.

    Written out rather than built as a dict and encoded: the shape never changes, and every
    string goes through the json module's C string encoder, so escaping is exactly json.dumps's.
    """
    members = ",".join(
        f'"{name}":{_json_string(value)}' for name, value in confirmation_members(x5t_s256, jkt).items()
    )
    cnf = f',"cnf":{{{members}}}' if members else ""
    return (
        f'{{"iss":{_json_string(issuer)},"sub":{_json_string(subject)},'
        f'"client_id":{_json_string(client_id)},"aud":{_json_string(audience)},'
        f'"iat":{int(issued_at)},"exp":{int(expires_at)},"jti":{_json_string(jti)},'
        f'"scope":{_json_string(scope)}{cnf}}}'
    ).encode()


def reference_token_hash(token: str) -> bytes:
    """What the store keeps of a reference token: its SHA-256, so a database leak leaks no token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class AccessTokenIssuer:
    def __init__(self, *, issuer: str, lifetime: int, keys: KeyRing, store: Store) -> None:
        self._issuer = issuer
        self._lifetime = lifetime
        self._keys = keys
        self._store = store
        self._header_cache: tuple[str, str] = ("", "")

    def _header_b64(self) -> str:
        key = self._keys.active
        if self._header_cache[0] != key.kid:
            self._header_cache = (key.kid, key.header_b64(_JWT_TYP))
        return self._header_cache[1]

    async def issue(
        self,
        client: Client,
        *,
        subject: str,
        scope: str,
        audience: str,
        x5t_s256: str | None,
        jkt: str | None = None,
    ) -> IssuedToken:
        """A new access token; `x5t_s256` and `jkt` are what it is bound to (`cnf`), if anything."""
        now = int(time.time())
        expires_at = now + self._lifetime
        jti = secrets.token_urlsafe(16)
        if client.access_token_as_jwt:
            payload = access_token_claims(
                issuer=self._issuer,
                subject=subject,
                client_id=client.client_id,
                audience=audience,
                issued_at=now,
                expires_at=expires_at,
                jti=jti,
                scope=scope,
                x5t_s256=x5t_s256,
                jkt=jkt,
            )
            token = self._keys.active.encode_jws(self._header_b64(), payload)
        else:
            token = secrets.token_urlsafe(32)
            await self._store.save_reference_token(
                ReferenceToken(
                    token_hash=reference_token_hash(token),
                    jti=jti,
                    client_id=client.client_id,
                    subject=subject,
                    scope=scope,
                    audience=audience,
                    issued_at=now,
                    expires_at=expires_at,
                    cnf_x5t_s256=x5t_s256,
                    cnf_jkt=jkt,
                )
            )
        return IssuedToken(token, self._lifetime, scope, token_type(jkt))
