"""Turns errors into responses: the only place that builds OAuth error JSON (RFC 6749 §5.2).

OAuthError subclasses become `{"error", "error_description"}` with their status and the headers
their RFC asks for; a database that does not answer becomes 503 `temporarily_unavailable` with
`Retry-After`; anything unexpected becomes a generic `server_error`, details in the log only.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from certbound.context import CONTEXT
from certbound.endpoints.http import NO_STORE
from certbound.errors import (
    InvalidClientError,
    InvalidTokenError,
    MethodNotAllowedError,
    MissingTokenError,
    OAuthError,
    StoreUnavailableError,
    TemporarilyUnavailableError,
)

__all__ = ["error_middleware", "error_response"]

log = logging.getLogger("certbound.http")


def error_response(exc: OAuthError) -> web.Response:
    body: dict[str, str] = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    headers = dict(NO_STORE)
    if isinstance(exc, InvalidClientError) and exc.basic_challenge:
        headers["WWW-Authenticate"] = 'Basic realm="certbound", charset="UTF-8"'
    elif isinstance(exc, MissingTokenError):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, InvalidTokenError):
        # RFC 6750 §3: the description is a quoted-string; keep it to safe characters.
        safe = exc.description.replace("\\", "").replace('"', "'")
        headers["WWW-Authenticate"] = f'Bearer error="{exc.error}", error_description="{safe}"'
    elif isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = "POST"
    elif isinstance(exc, TemporarilyUnavailableError):
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(
        body=json.dumps(body).encode("utf-8"),
        status=exc.status,
        content_type="application/json",
        headers=headers,
    )


def _route(request: web.Request) -> str:
    """The route's template (bounded label values for metrics), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OAuthError as exc:
        request.app[CONTEXT].metrics.error(_route(request), exc.error)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.description)
        else:
            log.info("%s %s -> %s: %s", request.method, request.path, exc.error, exc.description)
        return error_response(exc)
    except StoreUnavailableError as exc:
        log.info("%s %s: database unavailable: %s", request.method, request.path, exc)
        request.app[CONTEXT].metrics.error(_route(request), TemporarilyUnavailableError.error)
        return error_response(TemporarilyUnavailableError("the database is unavailable; retry later"))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        request.app[CONTEXT].metrics.error(_route(request), "server_error")
        return error_response(OAuthError("internal error"))
