"""Every request's frame: errors to responses (the only place that builds OAuth error JSON, RFC 6749
§5.2), request ids, refused repeated headers, the access line and the request metrics (SPEC §3).

OAuthError subclasses become `{"error", "error_description"}` with their status and the headers
their RFC asks for (certbound.errorresponse renders them); a refused client authentication shows its
description only when its reason is disclosed (certbound.reasons); a database that does not answer
becomes 503 `temporarily_unavailable` with `Retry-After`; anything unexpected becomes a generic
`server_error`, details in the log only.
"""

from __future__ import annotations

import logging
import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from certbound.accesslog import ACCESS_RECORD, REQUEST_ID_HEADER, AccessRecord, request_id_for
from certbound.clientcert import get_client_certificate
from certbound.context import CONTEXT
from certbound.errorresponse import error_response
from certbound.errors import (
    InvalidClientError,
    InvalidDPoPProofError,
    InvalidRequestError,
    OAuthError,
    StoreUnavailableError,
    TemporarilyUnavailableError,
)

__all__ = ["REFUSED_IF_REPEATED", "request_middleware"]

log = logging.getLogger("certbound.http")

#: Headers that decide who the caller is: a second copy is refused, never silently resolved one
#: way here and perhaps the other way by a proxy in front (issue 9 finding 12). aiohttp's parser
#: already answers 400 to a repeated Host, Content-Type, Content-Length or Transfer-Encoding, and
#: certbound.proxycert refuses repeated forwarded-certificate headers.
REFUSED_IF_REPEATED = (hdrs.AUTHORIZATION,)


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
    elif isinstance(exc, InvalidDPoPProofError):
        record.reason = exc.reason
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
    except StoreUnavailableError as exc:
        log.info("%s %s: database unavailable: %s", request.method, request.path, exc)
        response = _refused(
            request, record, TemporarilyUnavailableError("the database is unavailable; retry later")
        )
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
