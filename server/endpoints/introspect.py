"""Token introspection (RFC 7662 §2), as ordered steps: POST only, form body without repeated
parameters, client authentication exactly as at the token endpoint (SPEC §8), a confidential
caller, then the token's state.

Any authenticated confidential client may introspect any token. A token that is not active, for
whatever reason (revoked, expired, foreign, malformed, unknown, its client deleted), is
`{"active": false}` and nothing else (RFC 7662 §2.2), so the answer reveals nothing about it.
"""

from __future__ import annotations

import time

from aiohttp import hdrs, web

from server.clientauth import authenticate_client
from server.clientcert import get_client_certificate
from server.context import CONTEXT
from server.endpoints.http import json_response, read_form
from server.errors import InvalidClientError, InvalidRequestError, MethodNotAllowedError
from server.tokenstate import find_token

__all__ = ["introspection_endpoint"]

_INACTIVE = {"active": False}


async def introspection_endpoint(request: web.Request) -> web.Response:
    if request.method != hdrs.METH_POST:
        raise MethodNotAllowedError("the introspection endpoint accepts POST only")
    context = request.app[CONTEXT]
    form = await read_form(request)
    caller = await authenticate_client(
        form, request.headers.get(hdrs.AUTHORIZATION), get_client_certificate(request), context
    )
    if not caller.client.is_confidential:
        # RFC 7662 §2.1 wants the caller authorized; a public client proves nothing (SPEC §8).
        raise InvalidClientError("a public client cannot introspect tokens")
    token = form.get("token")
    if token is None:
        raise InvalidRequestError("token is missing")
    state = await find_token(token, context)
    if (
        state is None
        or not state.is_active(time.time())
        # A deleted client's reference tokens die with it; its JWTs must not outlive it either.
        or await context.clients.get(state.client_id) is None
    ):
        return json_response(_INACTIVE)
    return json_response(state.introspection(context.settings.issuer))
