"""TLS termination for certbound: pyOpenSSL contexts, a sans-IO connection and asyncio glue.

Other modules should import from here. The transport offers the peer's certificates as
``get_extra_info("peer_certificates")`` (a :class:`PeerCertificates` or ``None``) and the
negotiated session as ``get_extra_info("tls_info")`` (a :class:`TLSInfo`); request handlers never
read the transport: they call ``certbound.clientcert.get_client_certificate(request)``, the one
accessor, which a trusted proxy's header can stand in for.
"""

from __future__ import annotations

from .admission import AdmissionRefused, AdmittedConnection, ConnectionAdmission, ConnectionLimits
from .connection import TLSConnection, TLSError, TLSHandshakeError
from .context import TLSConfigError, build_server_context
from .peer import PeerCertificates, TLSInfo
from .transport import TLSServerProtocol, TLSTransport, start_tls_server

__all__ = [
    "AdmissionRefused",
    "AdmittedConnection",
    "ConnectionAdmission",
    "ConnectionLimits",
    "PeerCertificates",
    "TLSConfigError",
    "TLSConnection",
    "TLSError",
    "TLSHandshakeError",
    "TLSInfo",
    "TLSServerProtocol",
    "TLSTransport",
    "build_server_context",
    "start_tls_server",
]
