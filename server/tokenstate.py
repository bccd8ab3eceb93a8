"""Reading access tokens back (RFC 9068 §4, RFC 7662 §2.2, RFC 7009 §2.1).

Two jobs share one format check. `read_access_token_jwt` and `verified_claims` validate the form
of an RFC 9068 JWT access token (header `typ: at+jwt`, an asymmetric algorithm, a verified
signature); the resource-server verifier (certbound.resource) uses them with the AS's published keys.
`find_token` is the authorization server's view of one of its own tokens, a JWT it signed or a
stored reference token, with its owner, expiry and revocation state, for introspection and
revocation. Nothing here is cached: a revocation made on any node is seen by every node at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from certbound.errors import InvalidTokenError
from certbound.tokens import reference_token_hash

if TYPE_CHECKING:
    from certbound.context import ServerContext
    from certbound.store import Store

__all__ = [
    "ACCESS_TOKEN_ALGS",
    "TokenState",
    "find_token",
    "read_access_token_jwt",
    "revoke_token",
    "verified_claims",
]

#: Algorithms an access token may be signed with: asymmetric only, so a published public key can
#: never be used as an HMAC secret, and never `none` (RFC 8725 §3.1, §3.2).
ACCESS_TOKEN_ALGS = frozenset(
    {
        *(f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)),
        "EdDSA",
    }
)
#: RFC 9068 §2.1 and §4: `at+jwt`, which the media type `application/at+jwt` abbreviates.
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def read_access_token_jwt(token: str) -> jws.CompactSignature:
    """RFC 9068 §4 steps 1-2, before any key is looked up: a compact JWS whose header says
    `typ: at+jwt`, names a `kid` and an allowed algorithm. Raises InvalidTokenError."""
    if token.count(".") != 2:
        raise InvalidTokenError("the access token is not a JWT")
    try:
        signed = jws.extract_compact(token.encode("ascii"))
    except (JoseError, UnicodeError, ValueError):
        raise InvalidTokenError("the access token is a malformed JWT") from None
    header = signed.headers()
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
        raise InvalidTokenError("the JWT is not an access token (its typ must be at+jwt)")
    if header.get("alg") not in ACCESS_TOKEN_ALGS:
        raise InvalidTokenError(f"the access token's algorithm {header.get('alg')!r} is not accepted")
    if not isinstance(header.get("kid"), str):
        raise InvalidTokenError("the access token's header names no kid")
    return signed


def verified_claims(signed: jws.CompactSignature, key: Key) -> dict[str, Any]:
    """The claims of `signed` once its signature verifies with `key` (a JWK that, when it names
    an `alg`, names the header's). Raises InvalidTokenError."""
    alg = signed.headers()["alg"]
    if key.get("alg", alg) != alg:
        raise InvalidTokenError("the access token's algorithm does not match its signing key")
    try:
        valid = jws.validate_compact(signed, key, algorithms=[alg])
    except JoseError as exc:
        raise InvalidTokenError("the access token's signing key does not fit its algorithm") from exc
    if not valid:
        raise InvalidTokenError("the access token's signature is invalid")
    try:
        claims = json.loads(signed.payload)
    except (UnicodeError, ValueError):
        raise InvalidTokenError("the access token's claims are not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidTokenError("the access token's claims are not a JSON object")
    return claims


@dataclass(frozen=True, slots=True)
class TokenState:
    """One of this server's access tokens, whatever its state; `reference_hash` is None for a JWT."""

    jti: str
    client_id: str
    subject: str
    scope: str
    audience: str
    issued_at: int
    expires_at: int
    x5t_s256: str | None
    revoked: bool
    reference_hash: bytes | None

    def is_active(self, now: float) -> bool:
        # RFC 9068 §4 / RFC 7519 §4.1.4: not accepted on or after exp. The server keeps the
        # clock, so no skew allowance here.
        return not self.revoked and now < self.expires_at

    def introspection(self, issuer: str) -> dict[str, Any]:
        """The RFC 7662 §2.2 response for this token, when it is active."""
        body: dict[str, Any] = {
            "active": True,
            "client_id": self.client_id,
            "sub": self.subject,
            "scope": self.scope,
            "exp": self.expires_at,
            "iat": self.issued_at,
            "iss": issuer,
            "aud": self.audience,
            "token_type": "Bearer",
            "jti": self.jti,
        }
        if self.x5t_s256 is not None:
            # RFC 8705 §3.2: introspection returns the same confirmation as the token carries.
            body["cnf"] = {"x5t#S256": self.x5t_s256}
        return body


async def find_token(token: str, context: ServerContext) -> TokenState | None:
    """The state of `token` if this server issued it; None for anything else (malformed, foreign,
    signed by a key this server no longer publishes, or an unknown reference).

    The token's shape decides where to look (a JWT has two dots, a reference token none), so a
    `token_type_hint` is never needed (RFC 7662 §2.1 and RFC 7009 §2.1 make it optional).
    """
    if "." not in token:
        record = await context.store.get_reference_token(reference_token_hash(token))
        if record is None:
            return None
        return TokenState(
            jti=record.jti,
            client_id=record.client_id,
            subject=record.subject,
            scope=record.scope,
            audience=record.audience,
            issued_at=record.issued_at,
            expires_at=record.expires_at,
            x5t_s256=record.cnf_x5t_s256,
            revoked=record.revoked,
            reference_hash=record.token_hash,
        )
    try:
        claims = _own_jwt_claims(token, context)
    except InvalidTokenError:
        return None
    return TokenState(
        jti=claims["jti"],
        client_id=claims["client_id"],
        subject=claims["sub"],
        scope=claims["scope"],
        audience=claims["aud"],
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        x5t_s256=claims["cnf"]["x5t#S256"] if "cnf" in claims else None,
        revoked=await context.store.is_jwt_revoked(claims["jti"]),
        reference_hash=None,
    )


def _own_jwt_claims(token: str, context: ServerContext) -> dict[str, Any]:
    """The claims of a JWT this server signed, with the shape it issues; InvalidTokenError else."""
    signed = read_access_token_jwt(token)
    signing_key = context.keys.get(signed.headers()["kid"])
    if signing_key is None:
        raise InvalidTokenError("signed by a key this server does not publish")
    jwk: dict[str, str | list[str]] = {**signing_key.jwk}
    claims = verified_claims(signed, JWKRegistry.import_key(jwk))
    if claims.get("iss") != context.settings.issuer:
        # Signed with our key under another issuer name (the configuration changed): not ours.
        raise InvalidTokenError("issued under another issuer name")
    cnf = claims.get("cnf")
    if not (
        all(isinstance(claims.get(name), str) for name in ("jti", "client_id", "sub", "scope", "aud"))
        and all(isinstance(claims.get(name), int) for name in ("iat", "exp"))
        and (cnf is None or (isinstance(cnf, dict) and isinstance(cnf.get("x5t#S256"), str)))
    ):
        raise InvalidTokenError("claims of a shape this server does not issue")
    return claims


async def revoke_token(state: TokenState, store: Store) -> None:
    """RFC 7009 §2.1: a reference token is marked; a JWT's jti is kept until the JWT expires."""
    if state.reference_hash is not None:
        await store.revoke_reference_token(state.reference_hash)
    else:
        await store.revoke_jwt(state.jti, state.client_id, state.expires_at)
