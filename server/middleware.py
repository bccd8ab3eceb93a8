"""Turns errors raised by handlers into responses (RFC 6749 §5.2).

OAuthError subclasses become `{"error", "error_description"}` with their status and the headers
their RFC asks for (certbound.errorresponse renders them); anything unexpected becomes a generic
`server_error`, details in the log only.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from certbound.context import CONTEXT
from certbound.errorresponse import error_response
from certbound.errors import OAuthError

__all__ = ["error_middleware"]

log = logging.getLogger("certbound.http")


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
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        request.app[CONTEXT].metrics.error(_route(request), "server_error")
        return error_response(OAuthError("internal error"))
