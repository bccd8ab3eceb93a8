"""The one accessor handlers use for the client certificate of a request.

Getting the certificate (from the TLS connection, or later from a trusted proxy's header) is kept
apart from deciding whether it authenticates a client (certbound.clientauth).
"""

from __future__ import annotations

from aiohttp import web

from certbound.tls.peer import PeerCertificates

__all__ = ["CLIENT_CERTIFICATE_KEY", "get_client_certificate"]

#: Request key holding `PeerCertificates | None`; a proxy-header middleware may set it first.
CLIENT_CERTIFICATE_KEY = web.RequestKey[PeerCertificates | None]("certbound.client_certificate")


def get_client_certificate(request: web.Request) -> PeerCertificates | None:
    if CLIENT_CERTIFICATE_KEY in request:
        return request[CLIENT_CERTIFICATE_KEY]
    transport = request.transport
    certificate = transport.get_extra_info("peer_certificates") if transport is not None else None
    request[CLIENT_CERTIFICATE_KEY] = certificate
    return certificate
