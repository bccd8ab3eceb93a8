"""The leaf checks of an X.509-SVID (X509-SVID specification §4-5.2), beyond path validation.

The leaf must hold exactly one URI subjectAltName, the registered SPIFFE ID, be no CA, and carry a
keyUsage that allows digitalSignature and neither keyCertSign nor cRLSign. These checks read the
leaf only, so they run before path building: a certificate that cannot be an SVID costs no
signature check. Path validation itself (certbound.pki.trust) runs against the trust domain's
x509-svid authorities, never against `--client-ca`.
"""

from __future__ import annotations

from cryptography import x509

from certbound.pki.rejection import CertificateRejected
from certbound.reasons import Reason

__all__ = ["check_svid_leaf"]


def _extension(leaf: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return leaf.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def check_svid_leaf(leaf: x509.Certificate, spiffe_id: str) -> None:
    """Raise CertificateRejected unless `leaf` is an X.509-SVID leaf of `spiffe_id`."""
    try:
        names = _extension(leaf, x509.SubjectAlternativeName)
        constraints = _extension(leaf, x509.BasicConstraints)
        usage = _extension(leaf, x509.KeyUsage)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise CertificateRejected(f"malformed certificate: {exc}", code=Reason.CERT_MALFORMED) from None
    uris = (
        names.get_values_for_type(x509.UniformResourceIdentifier)
        if isinstance(names, x509.SubjectAlternativeName)
        else []
    )
    if len(uris) != 1:
        raise CertificateRejected(
            f"an X.509-SVID holds exactly one URI subjectAltName (this one holds {len(uris)})",
            code=Reason.SVID_INVALID,
        )
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise CertificateRejected("an X.509-SVID leaf must not be a CA", code=Reason.SVID_INVALID)
    if not isinstance(usage, x509.KeyUsage) or not usage.digital_signature:
        raise CertificateRejected(
            "an X.509-SVID leaf has a keyUsage that allows digitalSignature", code=Reason.SVID_INVALID
        )
    if usage.key_cert_sign or usage.crl_sign:
        raise CertificateRejected(
            "an X.509-SVID leaf must not allow keyCertSign or cRLSign", code=Reason.SVID_INVALID
        )
    if uris[0] != spiffe_id:
        raise CertificateRejected(
            "the certificate's SPIFFE ID is not the client's spiffe_id", code=Reason.SPIFFE_ID_MISMATCH
        )
