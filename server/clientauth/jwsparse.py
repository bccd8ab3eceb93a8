"""A `client_assertion` split and decoded, before anything about it is trusted (RFC 7515 §7.1,
RFC 7523 §2.2, draft-ietf-oauth-spiffe-client-auth).

`parse_assertion` runs before the client is looked up, so it refuses only what no client may send
whatever its method: an oversized or malformed compact JWS, duplicate JSON members, `alg: none`,
`crit` extensions, a `typ` that marks a token minted for another purpose. The accepted `typ` values
depend on the `client_assertion_type` the request declared (`ASSERTION_TYPES`).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certbound.authmethods import JWT_BEARER, JWT_SPIFFE
from certbound.errors import InvalidClientError
from certbound.jose import b64url_decode, decode_json_segment
from certbound.reasons import Reason

__all__ = ["ASSERTION_TYPES", "ParsedAssertion", "parse_assertion"]

#: `client_assertion_type` -> the `typ` header values an assertion of that type may carry, the one
#: to use first (case-insensitive, "application/" optional; no typ is always accepted).
#: - jwt-bearer: draft-ietf-oauth-rfc7523bis §4.1 registers `client-authentication+jwt`; plain JWT
#:   stays accepted for existing clients and for the platform tokens of `federated_jwt`. Any other
#:   typ (at+jwt, id_token+jwt, logout+jwt...) marks a token minted for another purpose.
#: - jwt-spiffe: the JWT-SVID specification §2.3 allows `JWT` and `JOSE`.
ASSERTION_TYPES: Mapping[str, tuple[str, ...]] = {
    JWT_BEARER: ("client-authentication+jwt", "jwt"),
    JWT_SPIFFE: ("jwt", "jose"),
}

# Assertions are a few hundred bytes (platform tokens a few kilobytes); anything far larger is not
# worth decoding.
_MAX_ASSERTION_CHARS = 16 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class ParsedAssertion:
    """A compact JWS split and decoded once, not yet trusted."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = decode_json_segment(segment)
    except ValueError:
        raise InvalidClientError(
            f"client_assertion {what} is not a base64url JSON object", reason=Reason.ASSERTION_MALFORMED
        ) from None
    if not isinstance(value, dict):
        raise InvalidClientError(
            f"client_assertion {what} is not a JSON object", reason=Reason.ASSERTION_MALFORMED
        )
    return value


def parse_assertion(token: str, assertion_type: str = JWT_BEARER) -> ParsedAssertion:
    """Split a compact JWS (RFC 7515 §7.1), decode its header and claims strictly, and refuse what
    no client may send as an assertion of `assertion_type` (alg none, a foreign typ, crit)."""
    if len(token) > _MAX_ASSERTION_CHARS:
        raise InvalidClientError(
            f"client_assertion is larger than {_MAX_ASSERTION_CHARS} characters",
            reason=Reason.ASSERTION_MALFORMED,
        )
    segments = token.split(".")
    if len(segments) != 3 or not all(_B64URL.fullmatch(segment) for segment in segments):
        raise InvalidClientError(
            "client_assertion is not a compact JWS (three base64url segments)",
            reason=Reason.ASSERTION_MALFORMED,
        )
    header_segment, payload_segment, signature_segment = segments
    header = _json_object(header_segment, "header")
    claims = _json_object(payload_segment, "claims")
    try:
        signature = b64url_decode(signature_segment)
    except (ValueError, binascii.Error):
        raise InvalidClientError(
            "client_assertion signature is not base64url", reason=Reason.ASSERTION_MALFORMED
        ) from None
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise InvalidClientError("client_assertion header has no alg", reason=Reason.ASSERTION_MALFORMED)
    if alg.lower() == "none":
        raise InvalidClientError(
            "client_assertion is unsigned (alg none is never accepted)", reason=Reason.ALG_NONE
        )
    _check_header(header, ASSERTION_TYPES[assertion_type])
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    return ParsedAssertion(header, claims, signing_input, signature)


def _check_header(header: Mapping[str, Any], accepted_typ: tuple[str, ...]) -> None:
    typ = header.get("typ")
    # RFC 7515 §4.1.9: "application/" may be omitted and media types are case-insensitive.
    if typ is not None and (
        not isinstance(typ, str) or typ.lower().removeprefix("application/") not in accepted_typ
    ):
        raise InvalidClientError(
            f"client_assertion typ {typ!r} is not a client authentication JWT (expected {accepted_typ[0]})",
            reason=Reason.TYP_NOT_CLIENT_AUTH,
        )
    if "kid" in header and not isinstance(header["kid"], str):
        raise InvalidClientError("client_assertion kid is not a string", reason=Reason.ASSERTION_MALFORMED)
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so any critical one is a refusal.
        raise InvalidClientError(
            "client_assertion header has crit extensions this server does not support",
            reason=Reason.CRIT_UNSUPPORTED,
        )
