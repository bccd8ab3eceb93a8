"""The token endpoint (RFC 6749 §3.2), as an ordered list of steps: POST only, form body without
repeated parameters, client authentication, grant type checks, the DPoP proof (RFC 9449 §5,
certbound.endpoints.dpop), then the grant's handler, which binds the token to what the request
proved (certificate, DPoP key)."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from certbound.accesslog import note
from certbound.context import CONTEXT
from certbound.endpoints.authenticated import read_authenticated_form
from certbound.endpoints.dpop import add_fresh_nonce, proven_key
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
    jkt = await proven_key(request, context)
    if jkt is not None:
        caller = dataclasses.replace(caller, dpop_jkt=jkt)
    elif client.dpop_bound:
        # RFC 9449 §5.2: such a client's token requests must carry a proof.
        raise InvalidRequestError(
            "this client's tokens are DPoP-bound (dpop_bound_access_tokens): send a DPoP proof"
        )
    body = await grant.handle(form, caller, context)
    context.metrics.token_issued(grant_type, caller.method)
    note(request, grant_type=grant_type, scope=body.get("scope"))
    response = json_response(body)
    add_fresh_nonce(response, context)
    return response
