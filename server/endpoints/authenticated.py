"""The steps every client-authenticated endpoint shares (token, introspection, revocation):
POST only, a form body without repeated parameters, then client authentication exactly as the
token endpoint does it (RFC 7662 §2.1, RFC 7009 §2.1, SPEC §8)."""

from __future__ import annotations

from aiohttp import hdrs, web

from certbound.accesslog import note_client
from certbound.clientauth import AuthenticatedClient, authenticate_client
from certbound.clientcert import get_client_certificate
from certbound.context import CONTEXT
from certbound.endpoints.http import read_form
from certbound.errors import MethodNotAllowedError

__all__ = ["read_authenticated_form"]


async def read_authenticated_form(
    request: web.Request, endpoint: str
) -> tuple[dict[str, str], AuthenticatedClient]:
    if request.method != hdrs.METH_POST:
        raise MethodNotAllowedError(f"the {endpoint} endpoint accepts POST only")
    form = await read_form(request)
    caller = await authenticate_client(
        form, request.headers.get(hdrs.AUTHORIZATION), get_client_certificate(request), request.app[CONTEXT]
    )
    note_client(request, caller.client.client_id, caller.method)
    return form, caller
