"""aiohttp glue for certbound.resource (RFC 6750 §2.1, §3): `bearer_required` protects a handler.

    app = web.Application()
    install_token_verifier(app, verifier, trusted_proxies=None)

    @bearer_required
    async def handler(request: web.Request) -> web.Response:
        token = request[TOKEN_KEY]

The client certificate comes from certbound's TLS layer, a stdlib `ssl` connection, or a trusted
proxy's header (certbound.clientcert, certbound.proxytrust), whichever serves the app.
"""

from __future__ import annotations

import functools

from aiohttp import web
from aiohttp.typedefs import Handler

from certbound.clientcert import resolve_client_certificate
from certbound.dpop import DPOP_HEADER
from certbound.proxytrust import TrustedProxies, log_wide_networks
from certbound.resource.guard import Refusal, check_request
from certbound.resource.verifier import DPoPRequest, TokenVerifier, VerifiedToken

__all__ = ["TOKEN_KEY", "TOKEN_VERIFIER", "TRUSTED_PROXIES", "bearer_required", "install_token_verifier"]

TOKEN_VERIFIER = web.AppKey("certbound.token_verifier", TokenVerifier)
TRUSTED_PROXIES = web.AppKey("certbound.trusted_proxies", TrustedProxies)
#: Where `bearer_required` leaves the VerifiedToken: `request[TOKEN_KEY]` (a typed key, as aiohttp
#: recommends for request storage).
TOKEN_KEY = web.RequestKey("token", VerifiedToken)


def install_token_verifier(
    app: web.Application, verifier: TokenVerifier, *, trusted_proxies: TrustedProxies | None = None
) -> None:
    """Make `verifier` the one `bearer_required` handlers of `app` use (closed with the app), and
    `trusted_proxies` the peers whose forwarded-certificate headers count (none by default)."""
    app[TOKEN_VERIFIER] = verifier
    if trusted_proxies is not None:
        log_wide_networks(trusted_proxies)
        app[TRUSTED_PROXIES] = trusted_proxies

    async def close(app: web.Application) -> None:
        await app[TOKEN_VERIFIER].close()

    app.on_cleanup.append(close)


def bearer_required(handler: Handler) -> Handler:
    """Protect an aiohttp handler: it runs only for a verified token, found at request[TOKEN_KEY].

    No token: 401 with a bare `WWW-Authenticate: Bearer` (RFC 6750 §3.1: no error code when the
    request has no authentication). A token that fails: 401 invalid_token with its description;
    with the DPoP scheme, or for a DPoP-bound token, the challenge is DPoP's (RFC 9449 §7.1) and a
    bad proof is invalid_dpop_proof.
    A malformed forwarded certificate from a trusted proxy: 400 invalid_request. The
    authorization server unreachable: 503.
    """

    @functools.wraps(handler)
    async def protected(request: web.Request) -> web.StreamResponse:
        proxies = request.app.get(TRUSTED_PROXIES)
        result = await check_request(
            request.app[TOKEN_VERIFIER],
            request.headers.getall("Authorization", []),
            lambda: resolve_client_certificate(request, proxies),
            where=f"{request.method} {request.path}",
            dpop_request=lambda: DPoPRequest(
                request.method, str(request.url), request.headers.getall(DPOP_HEADER, [])
            ),
        )
        if isinstance(result, Refusal):
            return web.Response(status=result.status, headers=result.headers, body=result.body)
        request[TOKEN_KEY] = result
        return await handler(request)

    return protected
