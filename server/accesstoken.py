"""The form of an RFC 9068 JWT access token (§2.1, §4 steps 1-3), shared by the authorization
server (introspection, revocation) and the resource-server verifier (certbound.resource).

Only format and signature: which key, which issuer and which claims are acceptable is the
caller's business. Nothing here touches the store, so the resource library can import it alone.
"""

from __future__ import annotations

import json
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key

from certbound.errors import InvalidTokenError

__all__ = ["ACCESS_TOKEN_ALGS", "read_access_token_jwt", "verified_claims"]

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
