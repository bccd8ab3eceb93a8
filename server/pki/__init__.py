"""Client certificate PKI for RFC 8705: path validation and CRLs (trust), RFC 4514 names (dn),
subjectAltName matching (san), the registered subject of a client (subject), and public-key
equality for self-signed certificates (spki).

The TLS layer (certbound.tls) only records the peer's certificates; these modules decide what they
are worth, and certbound.clientauth.mtls turns a refusal into `invalid_client`.
"""

from __future__ import annotations

from certbound.pki.dn import DNSyntaxError, name_matches, parse_dn
from certbound.pki.rejection import CertificateRejected
from certbound.pki.spki import certificate_key_registered
from certbound.pki.subject import SUBJECT_FIELDS, registered_subject, subject_matches
from certbound.pki.trust import ClientTrust, TrustStore, VerifiedPath

__all__ = [
    "SUBJECT_FIELDS",
    "CertificateRejected",
    "ClientTrust",
    "DNSyntaxError",
    "TrustStore",
    "VerifiedPath",
    "certificate_key_registered",
    "name_matches",
    "parse_dn",
    "registered_subject",
    "subject_matches",
]
