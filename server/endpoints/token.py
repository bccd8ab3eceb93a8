"""The token endpoint (RFC 6749 §3.2), as an ordered list of steps: POST only, form body without
repeated parameters, client authentication, grant type checks, then the grant's handler."""

from __future__ import annotations

from aiohttp import web

from certbound.accesslog import note
from certbound.context import CONTEXT
from certbound.endpoints.authenticated import read_authenticated_form
from certbound.endpoints.http import json_response
from certbound.errors import (
    InvalidRequestError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from certbound.grants import GRANTS

__all__ = ["token_endpoint"]


async def token_endpoint(request: web.Request) -> web.Response:
    form, caller = await read_authenticated_form(request, "token")
    context = request.app[CONTEXT]
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
    note(request, grant_type=grant_type, scope=body.get("scope"))
    return json_response(body)
