"""The check a protected request goes through, framework-free (RFC 6750 §2.1, §3; RFC 8705 §3;
RFC 9449 §7): read the access token, resolve the client certificate and, for the DPoP scheme, the
request's proof, verify them, or say how to refuse.

This is the one place that knows the token schemes a resource accepts (`Authorization: Bearer` and
`Authorization: DPoP`). The aiohttp and ASGI glue only translate a Refusal into their response type.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from certbound.endpoints.http import NO_STORE
from certbound.errorresponse import error_answer
from certbound.errors import InvalidRequestError, InvalidTokenError, OAuthError
from certbound.resource.authserver import AuthorizationServerError
from certbound.resource.verifier import DPoPRequest, TokenVerifier, VerifiedToken
from certbound.tls.peer import PeerCertificates

__all__ = ["PresentedToken", "Refusal", "check_request", "presented_token"]

log = logging.getLogger("certbound.resource")

#: RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: Scheme names are case-insensitive (RFC 9110 §11.1); the value says whether it is DPoP's.
_SCHEMES = {"bearer": False, "dpop": True}


@dataclass(frozen=True, slots=True)
class PresentedToken:
    value: str
    #: Sent with the DPoP scheme (RFC 9449 §7.1): a proof must come with it.
    dpop: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """How to answer a request that may not reach the protected handler."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


#: RFC 6750 §3.1: a request with no authentication gets a bare challenge, no error code.
_NO_TOKEN = Refusal(401, {**NO_STORE, "WWW-Authenticate": "Bearer"})
_UNAVAILABLE = Refusal(
    503,
    {**NO_STORE, "Content-Type": "text/plain; charset=utf-8"},
    b"the authorization server cannot be reached",
)


def presented_token(authorization: Sequence[str]) -> PresentedToken | None:
    """The access token of the request's `Authorization` header values (RFC 6750 §2.1, RFC 9449
    §7.1); None when the request presents none with a scheme this resource accepts.
    InvalidRequestError for more than one Authorization header (RFC 6750 §3.1: more than one
    method), InvalidTokenError for a malformed token."""
    if len(authorization) > 1:
        raise InvalidRequestError("more than one Authorization header")
    if not authorization:
        return None
    scheme, _, value = authorization[0].strip().partition(" ")
    dpop = _SCHEMES.get(scheme.lower())
    token = value.strip()
    if dpop is None or not token:
        return None
    if not _B64TOKEN.fullmatch(token):
        raise InvalidTokenError("the access token is malformed")
    return PresentedToken(token, dpop)


def _refusal(exc: OAuthError) -> Refusal:
    answer = error_answer(exc)
    return Refusal(answer.status, {**answer.headers, "Content-Type": answer.content_type}, answer.body)


async def check_request(
    verifier: TokenVerifier,
    authorization: Sequence[str],
    client_certificate: Callable[[], PeerCertificates | None],
    *,
    where: str,
    dpop_request: Callable[[], DPoPRequest],
) -> VerifiedToken | Refusal:
    """The verified token of a request, or the Refusal to answer it with. `client_certificate`
    resolves the request's certificate (it may raise InvalidRequestError for a malformed forwarded
    header); `dpop_request` gives what a DPoP proof is checked against, when the token comes with
    that scheme; `where` names the request in log lines (e.g. "GET /resource")."""
    try:
        token = presented_token(authorization)
        if token is None:
            return _NO_TOKEN
        dpop = dpop_request() if token.dpop else None
        return await verifier.verify(token.value, client_certificate(), dpop=dpop)
    except OAuthError as exc:
        log.info("%r -> %s: %s", where, exc.error, exc.description)
        return _refusal(exc)
    except AuthorizationServerError as exc:
        log.warning("cannot verify a token for %r: %s", where, exc)
        return _UNAVAILABLE
