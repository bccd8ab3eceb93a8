"""The one reader of a request's client certificate (aiohttp side), whatever terminated TLS.

Getting the certificate is kept apart from deciding whether it authenticates a client
(certbound.clientauth) or matches a token's binding (certbound.resource). Three sources:
- certbound's own TLS layer: the transport answers `peer_certificates` (its `ssl_object` is a
  pyOpenSSL Connection, not an `ssl.SSLObject`, so it is never asked for `getpeercert`);
- a stdlib `ssl` connection (`aiohttp.web` served with an `ssl.SSLContext`): the leaf from
  `getpeercert(binary_form=True)`. The stdlib hands it over only when it verified it, so the context
  needs `verify_mode = CERT_OPTIONAL` and `load_verify_locations` with the CAs of the clients'
  certificates (a certificate from any other CA fails the handshake); the chain is not available;
- a trusted proxy's header (certbound.proxytrust), resolved by `resolve_client_certificate`.
"""

from __future__ import annotations

import asyncio
import ssl

from aiohttp import web
from cryptography import x509

from certbound.errors import InvalidRequestError
from certbound.proxytrust import TrustedProxies
from certbound.tls.peer import PeerCertificates

__all__ = [
    "CLIENT_CERTIFICATE_KEY",
    "connection_certificate",
    "get_client_certificate",
    "resolve_client_certificate",
]

#: Request key holding `PeerCertificates | None` once resolved.
CLIENT_CERTIFICATE_KEY = web.RequestKey[PeerCertificates | None]("certbound.client_certificate")


def connection_certificate(transport: asyncio.BaseTransport | None) -> PeerCertificates | None:
    """The certificate the TLS peer of `transport` presented itself (None without TLS or one);
    InvalidRequestError when it cannot be parsed."""
    if transport is None:
        return None
    ours: PeerCertificates | None = transport.get_extra_info("peer_certificates")
    if ours is not None:
        return ours
    ssl_object = transport.get_extra_info("ssl_object")
    if isinstance(ssl_object, ssl.SSLObject):
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            try:
                return PeerCertificates.from_certs(x509.load_der_x509_certificate(der), ())
            except ValueError:
                # OpenSSL accepted it, but cryptography's stricter parser does not.
                raise InvalidRequestError("the client certificate cannot be parsed") from None
    return None


def resolve_client_certificate(
    request: web.Request, proxies: TrustedProxies | None
) -> PeerCertificates | None:
    """Decide the request's client certificate once: from `proxies`' header when the peer is a
    trusted proxy (InvalidRequestError when that header is malformed), else the connection's."""
    transport = request.transport
    own = connection_certificate(transport)
    if proxies is None:
        certificate = own
    else:
        peername = transport.get_extra_info("peername") if transport is not None else None
        host = peername[0] if isinstance(peername, tuple) and peername else None
        certificate = proxies.client_certificate(host, own, request.headers)
    request[CLIENT_CERTIFICATE_KEY] = certificate
    return certificate


def get_client_certificate(request: web.Request) -> PeerCertificates | None:
    """The request's client certificate, as resolved (by default: the connection's own)."""
    if CLIENT_CERTIFICATE_KEY in request:
        return request[CLIENT_CERTIFICATE_KEY]
    return resolve_client_certificate(request, None)
