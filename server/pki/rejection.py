"""Why a client certificate was refused (RFC 8705 §2.1: the server decides, after the handshake)."""

from __future__ import annotations

from certbound.reasons import Reason

__all__ = ["CertificateRejected"]


class CertificateRejected(Exception):
    """A client certificate failed PKI checks. Not an OAuthError: the authentication method turns
    it into `invalid_client`, after logging `reason` with the certificate it concerns."""

    def __init__(self, reason: str, *, code: Reason = Reason.CHAIN_UNTRUSTED) -> None:
        super().__init__(reason)
        self.reason = reason
        #: The machine reason code the refusal is logged and counted with.
        self.code = code
