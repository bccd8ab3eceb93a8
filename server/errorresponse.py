"""The wire form of an OAuthError (RFC 6749 §5.2, RFC 6750 §3): the only code that builds error JSON.

`error_answer` is framework-free (status, headers, body), so the ASGI glue of certbound.resource
renders errors exactly as the aiohttp side does; `error_response` is the same as an aiohttp
response. Neither needs the server's context: the resource library imports this module alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from certbound.dpop import NONCE_HEADER
from certbound.endpoints.http import NO_STORE
from certbound.errors import (
    InvalidClientError,
    InvalidTokenError,
    MethodNotAllowedError,
    MissingTokenError,
    OAuthError,
    TemporarilyUnavailableError,
    UseDPoPNonceError,
)

__all__ = ["ErrorAnswer", "error_answer", "error_response"]

_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What an error looks like on the wire; `headers` excludes Content-Type (always JSON)."""

    status: int
    headers: dict[str, str]
    body: bytes

    content_type = _JSON


def error_answer(exc: OAuthError) -> ErrorAnswer:
    body: dict[str, str] = {"error": exc.error}
    description = exc.public_description
    if description:
        body["error_description"] = description
    headers = dict(NO_STORE)
    if isinstance(exc, InvalidClientError) and exc.basic_challenge:
        headers["WWW-Authenticate"] = 'Basic realm="certbound", charset="UTF-8"'
    elif isinstance(exc, MissingTokenError):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, InvalidTokenError):
        # RFC 6750 §3: the description is a quoted-string; keep it to safe characters.
        safe = description.replace("\\", "").replace('"', "'")
        if exc.dpop_algs is None:
            headers["WWW-Authenticate"] = f'Bearer error="{exc.error}", error_description="{safe}"'
        else:
            # RFC 9449 §7.1: the DPoP scheme's challenge names the algorithms it accepts.
            algs = " ".join(exc.dpop_algs)
            headers["WWW-Authenticate"] = (
                f'DPoP error="{exc.error}", error_description="{safe}", algs="{algs}"'
            )
    elif isinstance(exc, UseDPoPNonceError):
        headers[NONCE_HEADER] = exc.nonce
    elif isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = "POST"
    elif isinstance(exc, TemporarilyUnavailableError):
        headers["Retry-After"] = str(exc.retry_after)
    return ErrorAnswer(exc.status, headers, json.dumps(body).encode("utf-8"))


def error_response(exc: OAuthError) -> web.Response:
    answer = error_answer(exc)
    return web.Response(
        body=answer.body, status=answer.status, content_type=answer.content_type, headers=answer.headers
    )
