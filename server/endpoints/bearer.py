"""Bearer credentials for the registration and admin endpoints (RFC 6750 §2.1).

The `Authorization: Bearer <token>` header only; a missing or wrong token is 401 `invalid_token`
with a `WWW-Authenticate: Bearer` challenge (RFC 6750 §3), built by the error middleware: without
an error code when there was no token at all (§3.1).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import hdrs, web

from certbound.errors import MissingTokenError

__all__ = ["StaticToken", "require_bearer_token"]


def require_bearer_token(request: web.Request) -> str:
    """The token of the request's `Authorization: Bearer` header; MissingTokenError without one."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise MissingTokenError("a bearer token is required")
    return token


class StaticToken:
    """A configured token (initial access token, admin token) kept only as its SHA-256.

    Comparing digests in constant time leaks neither the token's content nor its length.
    """

    __slots__ = ("_digest",)

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(token.encode("utf-8")).digest()

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode("utf-8")).digest(), self._digest)
