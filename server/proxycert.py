"""The token server's forwarded-certificate middleware (RFC 9440, SPEC §8).

Installed only when `--trusted-proxy` is configured: it resolves each request's client certificate
(certbound.clientcert) with the proxies, header format and pins of the settings, before any
handler reads it. A malformed header from a trusted proxy is 400 `invalid_request` (the error
middleware, outside this one, renders it).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from certbound.clientcert import resolve_client_certificate
from certbound.config import Settings
from certbound.proxytrust import TrustedProxies

__all__ = ["proxy_certificate_middleware", "trusted_proxies"]


def trusted_proxies(settings: Settings) -> TrustedProxies | None:
    if not settings.trusted_proxy:
        return None
    return TrustedProxies(
        settings.trusted_proxy,
        header_format=settings.client_cert_header,
        cert_sha256=settings.trusted_proxy_cert_sha256,
    )


def proxy_certificate_middleware(settings: Settings) -> Middleware:
    """The middleware for `settings.trusted_proxy`, `client_cert_header` and the pins."""
    proxies = trusted_proxies(settings)

    @web.middleware
    async def forwarded_client_certificate(request: web.Request, handler: Handler) -> web.StreamResponse:
        resolve_client_certificate(request, proxies)
        return await handler(request)

    return forwarded_client_certificate
