"""TLS termination for certbound: pyOpenSSL contexts, a sans-IO connection and asyncio glue.

Other modules should import from here.  The peer's certificates reach request
handlers through ``request.transport.get_extra_info("peer_certificates")`` (a
:class:`PeerCertificates` or ``None``) and ``get_extra_info("tls_info")`` (a
:class:`TLSInfo`, whose ``cache`` lives as long as the TLS connection).
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
