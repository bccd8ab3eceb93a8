"""Token revocation (RFC 7009 §2), as ordered steps: POST only, form body without repeated
parameters, client authentication exactly as at the token endpoint (SPEC §8), then the token.

A public client identified by its client_id may revoke its own tokens (RFC 7009 §2.1); a client
may revoke only tokens issued to it: another client's token is 400 `invalid_request` and stays
active. An unknown, invalid or already inactive token answers 200 (RFC 7009 §2.2). The hint is
only a hint and never refused: the token's shape says what it is.
"""

from __future__ import annotations

import time

from aiohttp import web

from certbound.context import CONTEXT
from certbound.endpoints.authenticated import read_authenticated_form
from certbound.endpoints.http import NO_STORE
from certbound.errors import InvalidRequestError
from certbound.tokenstate import find_token, revoke_token

__all__ = ["revocation_endpoint"]


async def revocation_endpoint(request: web.Request) -> web.Response:
    form, caller = await read_authenticated_form(request, "revocation")
    context = request.app[CONTEXT]
    token = form.get("token")
    if token is None:
        raise InvalidRequestError("token is missing")
    state = await find_token(token, context)
    if state is not None and state.is_active(time.time()):
        if state.client_id != caller.client.client_id:
            raise InvalidRequestError("the token was not issued to this client")
        await revoke_token(state, context.store)
    return web.Response(status=200, headers=NO_STORE)
