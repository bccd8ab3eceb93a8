"""The authorization server's view of its own access tokens (RFC 7662 §2.2, RFC 7009 §2.1).

`find_token` finds one of this server's tokens, a JWT it signed (format checks in
certbound.accesstoken, shared with the resource-server verifier) or a stored reference token, with its
owner, expiry and revocation state, for introspection and revocation. Nothing here is cached: a
revocation made on any node is seen by every node at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from joserfc.jwk import JWKRegistry

from certbound.accesstoken import read_access_token_jwt, verified_claims
from certbound.errors import InvalidTokenError
from certbound.tokens import confirmation_members, reference_token_hash, token_type

if TYPE_CHECKING:
    from certbound.context import ServerContext
    from certbound.store import Store

__all__ = ["TokenState", "find_token", "revoke_token"]


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
    #: RFC 9449 §6: the thumbprint of the DPoP key the token is bound to.
    jkt: str | None = None

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
            # RFC 9449 §6.2: a DPoP-bound token is introspected as such.
            "token_type": token_type(self.jkt),
            "jti": self.jti,
        }
        cnf = confirmation_members(self.x5t_s256, self.jkt)
        if cnf:
            # RFC 8705 §3.2, RFC 9449 §6.2: the same confirmation as the token carries.
            body["cnf"] = cnf
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
            jkt=record.cnf_jkt,
        )
    try:
        claims = _own_jwt_claims(token, context)
    except InvalidTokenError:
        return None
    cnf: dict[str, str] = claims.get("cnf", {})
    return TokenState(
        jti=claims["jti"],
        client_id=claims["client_id"],
        subject=claims["sub"],
        scope=claims["scope"],
        audience=claims["aud"],
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        x5t_s256=cnf.get("x5t#S256"),
        revoked=await context.store.is_jwt_revoked(claims["jti"]),
        reference_hash=None,
        jkt=cnf.get("jkt"),
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
        and (cnf is None or _is_confirmation(cnf))
    ):
        raise InvalidTokenError("claims of a shape this server does not issue")
    return claims


def _is_confirmation(cnf: object) -> bool:
    """A `cnf` this server issues: `x5t#S256`, `jkt` or both, as strings."""
    return (
        isinstance(cnf, dict)
        and bool(cnf)
        and set(cnf) <= {"x5t#S256", "jkt"}
        and all(isinstance(value, str) for value in cnf.values())
    )


async def revoke_token(state: TokenState, store: Store) -> None:
    """RFC 7009 §2.1: a reference token is marked; a JWT's jti is kept until the JWT expires."""
    if state.reference_hash is not None:
        await store.revoke_reference_token(state.reference_hash)
    else:
        await store.revoke_jwt(state.jti, state.client_id, state.expires_at)
