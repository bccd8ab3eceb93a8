"""Immutable descriptions of a TLS peer: its certificates and the negotiated session.

These objects are produced once per TLS connection, right after the handshake, and
are what the rest of the server sees of TLS.  They deliberately know nothing about
how the certificates will be judged: validation is the application's business.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["PeerCertificates", "TLSInfo"]


@dataclass(frozen=True, slots=True)
class PeerCertificates:
    """The certificates a client presented during the handshake.

    ``chain`` holds only the additional certificates the client sent (usually
    intermediates), in the order it sent them; the leaf is never repeated there.
    Build instances with :meth:`from_certs` so the derived fields are consistent.
    """

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    leaf_der: bytes
    x5t_s256: str

    @classmethod
    def from_certs(cls, leaf: x509.Certificate, chain: Iterable[x509.Certificate]) -> PeerCertificates:
        """Build from a leaf and the certificates sent with it (a leaf copy is dropped)."""
        leaf_der = leaf.public_bytes(Encoding.DER)
        digest = hashlib.sha256(leaf_der).digest()
        return cls(
            leaf=leaf,
            chain=tuple(cert for cert in chain if cert != leaf),
            leaf_der=leaf_der,
            # RFC 8705 section 3.1: base64url-encoded SHA-256 of the DER certificate,
            # without padding.
            x5t_s256=base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"),
        )


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What was negotiated on one TLS connection."""

    version: str
    cipher: str
    alpn: str | None
    resumed: bool
    peer: PeerCertificates | None
