"""Every request's frame: errors to responses (the only place that builds OAuth error JSON, RFC 6749
§5.2), request ids, refused repeated headers, the access line and the request metrics (SPEC §3).

OAuthError subclasses become `{"error", "error_description"}` with their status and the headers
their RFC asks for; a refused client authentication shows its description only when its reason
is disclosed (certbound.reasons); anything unexpected becomes a generic `server_error`, details in
the log only.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from certbound.accesslog import ACCESS_RECORD, REQUEST_ID_HEADER, AccessRecord, request_id_for
from certbound.clientcert import get_client_certificate
from certbound.context import CONTEXT
from certbound.endpoints.http import NO_STORE
from certbound.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidTokenError,
    MethodNotAllowedError,
    MissingTokenError,
    OAuthError,
)

__all__ = ["REFUSED_IF_REPEATED", "error_response", "request_middleware"]

log = logging.getLogger("certbound.http")

#: Headers that decide who the caller is: a second copy is refused, never silently resolved one
#: way here and perhaps the other way by a proxy in front (issue 9 finding 12). aiohttp's parser
#: already answers 400 to a repeated Host, Content-Type, Content-Length or Transfer-Encoding, and
#: certbound.proxycert refuses repeated forwarded-certificate headers.
REFUSED_IF_REPEATED = (hdrs.AUTHORIZATION,)


def error_response(exc: OAuthError) -> web.Response:
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
        headers["WWW-Authenticate"] = f'Bearer error="{exc.error}", error_description="{safe}"'
    elif isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = "POST"
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


def _refuse_repeated_headers(request: web.Request) -> None:
    for name in REFUSED_IF_REPEATED:
        if len(request.headers.getall(name, ())) > 1:
            raise InvalidRequestError(f"the {name} header is repeated")


def _refused(request: web.Request, record: AccessRecord, exc: OAuthError) -> web.Response:
    record.error = exc.error
    record.detail = exc.description
    metrics = request.app[CONTEXT].metrics
    metrics.error(_route(request), exc.error)
    if isinstance(exc, InvalidClientError):
        record.reason = exc.reason
        record.client_id = exc.client_id or record.client_id
        record.auth_method = exc.auth_method or record.auth_method
        metrics.client_auth_refused(exc.reason)
    return error_response(exc)


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    record = request[ACCESS_RECORD] = AccessRecord(request_id_for(request))
    failure: web.HTTPException | None = None
    try:
        _refuse_repeated_headers(request)
        response = await handler(request)
    except OAuthError as exc:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.description)
        response = _refused(request, record, exc)
    except web.HTTPException as exc:  # aiohttp's own 404/405 (no route matched)
        failure = response = exc
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        response = _refused(request, record, OAuthError("internal error"))
    response.headers[REQUEST_ID_HEADER] = record.request_id
    seconds = time.perf_counter() - started
    request.app[CONTEXT].metrics.request_done(_route(request), response.status, seconds)
    certificate = get_client_certificate(request)  # from TLS, or from a trusted proxy's header
    record.write(request, response.status, seconds, certificate.x5t_s256 if certificate is not None else None)
    if failure is not None:
        raise failure
    return response
