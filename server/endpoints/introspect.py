"""Token introspection (RFC 7662 §2), as ordered steps: POST only, form body without repeated
parameters, client authentication exactly as at the token endpoint (SPEC §8), a confidential
caller, then the token's state.

Any authenticated confidential client may introspect any token. A token that is not active, for
whatever reason (revoked, expired, foreign, malformed, unknown, its client deleted), is
`{"active": false}` and nothing else (RFC 7662 §2.2), so the answer reveals nothing about it.
"""

from __future__ import annotations

import time

from aiohttp import web

from certbound.context import CONTEXT
from certbound.endpoints.authenticated import read_authenticated_form
from certbound.endpoints.http import json_response
from certbound.errors import InvalidClientError, InvalidRequestError
from certbound.reasons import Reason
from certbound.tokenstate import find_token

__all__ = ["introspection_endpoint"]

_INACTIVE = {"active": False}


async def introspection_endpoint(request: web.Request) -> web.Response:
    form, caller = await read_authenticated_form(request, "introspection")
    context = request.app[CONTEXT]
    if not caller.client.is_confidential:
        # RFC 7662 §2.1 wants the caller authorized; a public client proves nothing (SPEC §8).
        raise InvalidClientError("a public client cannot introspect tokens", reason=Reason.PUBLIC_CLIENT)
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
