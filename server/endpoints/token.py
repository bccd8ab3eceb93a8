"""The token endpoint (RFC 6749 §3.2), as an ordered list of steps: POST only, form body without
repeated parameters, client authentication, grant type checks, then the grant's handler."""

from __future__ import annotations

from aiohttp import hdrs, web

from server.clientauth import authenticate_client
from server.clientcert import get_client_certificate
from server.context import CONTEXT
from server.endpoints.http import json_response, read_form
from server.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from server.grants import GRANTS

__all__ = ["token_endpoint"]


async def token_endpoint(request: web.Request) -> web.Response:
    if request.method != hdrs.METH_POST:
        raise MethodNotAllowedError("the token endpoint accepts POST only")
    context = request.app[CONTEXT]
    form = await read_form(request)
    caller = await authenticate_client(
        form, request.headers.get(hdrs.AUTHORIZATION), get_client_certificate(request), context
    )
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequestError("grant_type is missing")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantTypeError(f"grant_type {grant_type} is not supported")
    client = caller.client
    if grant.confidential_only and not client.is_confidential:
        raise UnauthorizedClientError(f"a public client cannot use {grant_type}")
    if grant_type not in client.grant_types:
        raise UnauthorizedClientError(f"client is not registered for {grant_type}")
    body = await grant.handle(form, caller, context)
    context.metrics.token_issued(grant_type, caller.method)
    return json_response(body)
